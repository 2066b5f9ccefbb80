"""``docs/your_family.md`` end to end: every ``taskgen`` line of its runnable blocks, in order, from a fresh folder,
on the template family, then its Python block on the θ the page meta-trained.

Small settings, as the page's test promises: the meta-training line gets ``--steps 2`` in place of ``--hours`` and
a tiny group, the comparison ``--max-tasks 2``; every other line runs as written."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "your_family.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
SMALL_META_TRAIN = ["--steps", "2", "--no-progress", "--set", "num_groups=2", "--set", "tasks_per_group=2",
                    "--set", "truncation=10", "--set", "horizon_min=20", "--set", "horizon_max=40",
                    "--set", "outer_warmup=0", "--set", "panel={\"on\": \"source\", \"max_tasks\": 2}"]


def _lines(lang: str) -> list[str]:
    out = []
    for m in FENCE.finditer(PAGE.read_text()):
        if m.group(1) != lang or m.group(2).lstrip().startswith("# not run:"):
            continue
        out.append(m.group(2))
    return out


def _small(args: list[str]) -> list[str]:
    if args[:2] == ["lopt", "meta-train"]:
        i = args.index("--hours")
        return args[:i] + args[i + 2:] + SMALL_META_TRAIN
    if args[:2] == ["lopt", "compare"]:
        return args + ["--max-tasks", "2", "--no-progress"]
    return args


def test_the_tutorial_runs_from_a_fresh_folder(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "examples" / "family_template"), str(REPO)]),
               JAX_PLATFORMS="cpu", TASKGEN_PLUGINS="my_families.register",
               TASKGEN_YARDSTICK_CACHE=str(tmp_path / "cache"))
    ran = []
    for block in _lines("bash"):
        for raw in block.splitlines():
            line = raw.split(" #")[0].strip()
            if not line.startswith("taskgen "):
                continue
            args = _small(shlex.split(line)[1:])
            res = subprocess.run([sys.executable, "-m", "taskgen_cli", *args], cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=600)
            assert res.returncode == 0, (line, res.stdout[-2000:], res.stderr[-3000:])
            ran.append((args[:2], res))
    assert [a[0] if a[0] != "lopt" else " ".join(a) for a, _ in ran] == [
        "check-family", "sample", "export", "list", "lopt meta-train", "lopt compare"]
    end = json.loads(ran[4][1].stdout.splitlines()[-1])
    assert end["stop_reason"] == "steps" and end["verdict"]
    assert "held-out tasks of mine.jsonl" in ran[4][1].stderr
    assert {p.name for p in (tmp_path / "runs" / "mine" / "compare").iterdir()} >= {"yardstick.json", "strip.png"}
    assert (tmp_path / "runs" / "mine" / "scalars.csv").is_file() and (tmp_path / "runs" / "mine" / "tensorboard").is_dir()
    # step 6: the θ of step 4 in a training loop of one's own
    code = next(m.group(2) for m in FENCE.finditer(PAGE.read_text()) if m.group(1) == "python")
    code += "\nassert float(loss_fn(params)) < 1.0, float(loss_fn(params))\n"
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
