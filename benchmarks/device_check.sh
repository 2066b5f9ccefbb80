#!/usr/bin/env bash
# The device check: on whatever accelerator JAX finds (nothing is forced to the CPU), in under 8 minutes:
#   1. the device tests (tests/test_devices.py: the learned optimizer trains on the device as on the CPU, and
#      meta-training runs there; tests/test_many_devices.py: runs split over devices match one device);
#   2. the learned-optimizer/Adam step benchmark (benchmarks/bench_lopt_step.py, two tasks);
#   3. PES meta-training throughput (benchmarks/bench_meta_train.py, 10 timed steps, no Ray);
#   4. a short meta-training run of the command line (quick preset, 5 outer steps).
# Writes one JSON: $OUT/device_check.json when OUT is set (the device machine's output folder), else
# benchmarks/results/device_check_<platform>.json. Usage: bash benchmarks/device_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
WORK=$(mktemp -d)
export XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-false}
export TASKGEN_YARDSTICK_CACHE=$WORK/yardstick TASKGEN_JAX_CACHE=$WORK/jax

run() {  # run NAME CMD...: time a part, keep its output and exit status
  local name=$1; shift
  local t0=$(date +%s%N)
  "$@" > "$WORK/$name.log" 2>&1; local rc=$?
  local t1=$(date +%s%N)
  echo "$name $rc $(( (t1 - t0) / 1000000 ))" >> "$WORK/parts.txt"
  echo "== $name: rc $rc"; tail -n 15 "$WORK/$name.log"
}

run device_tests "$PY" -m pytest -q -p no:cacheprovider tests/test_devices.py tests/test_many_devices.py
run lopt_step "$PY" -m benchmarks.bench_lopt_step --steps 50 --reps 3 --tasks mlp784,mlp64 --out "$WORK/lopt_step.json"
run meta_train "$PY" -m benchmarks.bench_meta_train --steps 10 --no-ray --out "$WORK/meta_train.json"
run cli_meta_train "$PY" -m taskgen_cli lopt meta-train --preset quick --steps 5 --no-progress --set eval_every=0 \
  --out "$WORK/run"

"$PY" - "$WORK" <<'PY'
import json, os, pathlib, subprocess, sys
work = pathlib.Path(sys.argv[1])
import jax
devices = [{"platform": d.platform, "kind": d.device_kind} for d in jax.devices()]
parts = {}
for line in (work / "parts.txt").read_text().splitlines():
    name, rc, ms = line.split()
    parts[name] = {"rc": int(rc), "seconds": round(int(ms) / 1000, 1),
                   "log_tail": (work / f"{name}.log").read_text()[-3000:]}
for name in ("lopt_step", "meta_train"):
    path = work / f"{name}.json"
    if path.is_file():
        parts[name]["result"] = json.loads(path.read_text())
try:
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=30).stdout.strip()
except (OSError, subprocess.SubprocessError):
    smi = None
sys.path.insert(0, ".")
from benchmarks.common import machine as machine_info
out = {"check": "device_check", "jax": jax.__version__, "default_backend": jax.default_backend(),
       "devices": devices, "nvidia_smi": smi, "machine": machine_info(), "parts": parts,
       "ok": all(p["rc"] == 0 for p in parts.values())}
dest = pathlib.Path(os.environ["OUT"]) / "device_check.json" if os.environ.get("OUT") else \
    pathlib.Path("benchmarks/results") / f"device_check_{jax.default_backend()}.json"
dest.parent.mkdir(parents=True, exist_ok=True)
dest.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
print(f"device check: {'ok' if out['ok'] else 'FAILED'}; wrote {dest}")
PY
