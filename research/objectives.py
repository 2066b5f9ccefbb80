"""Meta-objectives and estimators compared at equal compute, judged on the yardstick's valid set.

Each arm is the pretraining recipe with a few settings changed. Every arm meta-trains θ from the hand-set θ with
the same seed and task stream for the same number of outer steps. Every arm keeps the recipe's estimators, slots and
truncation length, so an outer step runs the same number of inner steps in every arm: equal outer steps are equal
compute, and unlike a wall-clock budget they do not depend on what else the machine runs (the seconds are
reported beside them). Its last θ is then scored on the valid set and compared task by task with the hand-set θ
(paired 95 % bootstrap interval of the mean normalized final loss, and of the mean over the curve; below 0: the arm
is better). Beside it, the gradient-quality diagnostic of the arm's estimate at the hand-set θ (the signal-to-noise
ratio of one outer step's meta-gradient, overall and per block of θ). Nothing here is claimed on test.

    python -m research.objectives [--arms recipe,sign,final,final_sign,mlp_only,nres] [--steps 450]

Resumable: an arm whose run reached its steps is not run again, an interrupted one continues from its checkpoint,
and θ runs on valid and the diagnostics are cached under ``runs/objectives/``. Runs go to
``runs/objectives/<arm>``; the table to ``research/results/objectives.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from research.common import RESULTS_DIR

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "lopt_trainer" / "data" / "pretrain_config.json"

ARMS = {
    "recipe": {},
    "sign": {"loss_difference": "sign"},
    "final": {"horizon": "constant", "horizon_min": 1000, "horizon_max": 1000, "meta_loss_from": 950},
    "final_sign": {"horizon": "constant", "horizon_min": 1000, "horizon_max": 1000, "meta_loss_from": 950,
                   "loss_difference": "sign"},
    "mlp_only": {"train_parts": ["mlp"]},
    "nres": {"estimator": "nres"},
}
"""Arm name → the recipe settings it changes.

* ``recipe``: the reference row (mean outer-valid loss over log-uniform 200–3000-step horizons, scaled by each
  problem's initial loss).
* ``sign``: each slot's antithetic difference reduced to its sign (VeLO), so no task's loss scale weighs: the
  scale-free limit of any per-task normalisation of the meta-loss.
* ``final``: the yardstick's horizon (1000 steps) with the meta-loss counted on its last 50 steps only (PES carries
  the credit back to the start of the unroll).
* ``final_sign``: both (VeLO's objective at this horizon).
* ``mlp_only``: only the per-parameter MLP is perturbed and trained; the LSTM and its heads stay hand-set.
* ``nres``: noise-reuse ES (one perturbation per inner problem) in place of PES.
"""


def meta_train(arm: str, steps: int, runs: Path, config: str) -> Path:
    """Meta-train ``arm`` for ``steps`` outer steps in ``runs/<arm>`` (continued when it holds an unfinished run)."""
    run = runs / arm
    done = steps_done(run)
    if done >= steps:
        return run
    sets = [x for k, v in ARMS[arm].items() for x in ("--set", f"{k}={json.dumps(v)}")]
    cmd = [sys.executable, "-m", "taskgen_cli", "lopt", "meta-train", "--config", config, "--out", str(run),
           "--steps", str(steps), "--set", "panel_every=0", "--no-progress", *sets]
    if done:
        cmd.append("--resume")
    print(f"{arm}: meta-training outer steps {done}..{steps} ({' '.join(sets[1::2]) or 'the recipe'})", flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    return run


def steps_done(run: Path) -> int:
    """The outer steps a run holds: its summary's when it stopped cleanly, else its checkpointed metrics'."""
    summary = run / "summary.json"
    if summary.is_file():
        return int(json.loads(summary.read_text()).get("step", 0))
    return run_figures(run)["outer_steps"] if (run / "checkpoint.msgpack").is_file() else 0


def arm_config(arm: str, config: str):
    """The meta-train settings of ``arm``: the recipe ``config`` with the arm's changes."""
    from lopt_trainer.meta.config import MetaTrainConfig, load_config

    return MetaTrainConfig.from_dict({**load_config(config).to_dict(), **ARMS[arm]})


def arm_snr(arm: str, config: str, runs: Path, k: int) -> dict:
    """The gradient-quality figures of ``arm``'s estimate at the hand-set θ (cached in ``runs/<arm>_snr.json``)."""
    from lopt_trainer.common.run_files import clean_json, write_json
    from lopt_trainer.meta.trainer import load_specs_for
    from lopt_trainer.theta.load import load_theta
    from research.grad_quality import gradient_quality

    cache = runs / f"{arm}_snr.json"
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("k") == k:
            return cached
    cfg = arm_config(arm, config)
    specs = load_specs_for(cfg.split().tasks)[0]
    out = gradient_quality(cfg, load_theta("handset"), specs, k=k)
    out = {"k": k, "snr": out["snr"], "cosine": out["cosine"],
           "blocks": {b: v["snr"] for b, v in out["blocks"].items()}, "seconds": out["seconds"]}
    write_json(cache, clean_json(out))
    return out


def run_figures(run: Path) -> dict:
    """Outer steps, inner steps and seconds of a run (from its metrics)."""
    from lopt_trainer.meta.metrics import read_metrics

    steps = [r for r in read_metrics(run) if r.get("kind") == "step"]
    return {"outer_steps": len(steps), "inner_steps": sum(r["inner_steps"] for r in steps),
            "step_seconds": sum(r["step_seconds"] for r in steps),
            "compile_seconds": sum(r["compile_seconds"] for r in steps)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arms", default=",".join(ARMS), help=f"Comma-separated, of {', '.join(ARMS)}.")
    ap.add_argument("--steps", type=int, default=450, help="Outer steps of each arm (default 450).")
    ap.add_argument("--snr-k", type=int, default=4, help="Independent estimates of the diagnostic (default 4).")
    ap.add_argument("--config", default=str(RECIPE), help="The recipe the arms change (default: the shipped one).")
    ap.add_argument("--cache", default=str(ROOT / "runs" / "yardstick" / "cache"),
                    help="The cache of θ runs on valid (shared with research.yardstick_reliability).")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "objectives"), help="Folder of the arms' runs.")
    ap.add_argument("--out", default=str(RESULTS_DIR / "objectives.json"), help="The table (JSON).")
    args = ap.parse_args(argv)
    arms = [a for a in args.arms.split(",") if a]
    unknown = [a for a in arms if a not in ARMS]
    if unknown or args.steps < 1 or args.snr_k < 2:
        ap.error(f"--arms takes {', '.join(ARMS)} (got {unknown}); --steps ≥ 1; --snr-k ≥ 2")
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    for arm in arms:
        meta_train(arm, args.steps, runs, args.config)

    from lopt_trainer.common.machine import machine
    from lopt_trainer.common.run_files import write_json
    from lopt_trainer.evaluation import yardstick
    from lopt_trainer.theta.load import load_theta

    cache = Path(args.cache)
    base_summary, base_scores, _ = yardstick.evaluate(load_theta("handset"), "valid", cache=cache)
    rows = [{"arm": "handset", "final_mean": base_summary["rows"]["theta"]["final"]["mean"]}]
    for arm in arms:
        summary, scores, _ = yardstick.evaluate(load_theta(runs / arm), "valid", cache=cache)
        vs = yardstick.compare(scores, base_scores)
        snr = arm_snr(arm, args.config, runs, args.snr_k)
        rows.append({"arm": arm, "settings": ARMS[arm], **run_figures(runs / arm), "snr_at_handset": snr,
                     "final_mean": summary["rows"]["theta"]["final"]["mean"],
                     "vs_handset_final": vs["final"]["difference"], "vs_handset_curve": vs["curve"]["difference"],
                     "wins_ties_losses": [vs["final"][k] for k in ("wins", "ties", "losses")]})
    print(f"{'arm':<11} {'outer':>6} {'mean n':>8}  {'Δ final vs hand-set [95%]':>28}  {'Δ curve [95%]':>26}  "
          f"{'w/t/l':>10}  {'snr':>7}")
    for r in rows:
        d, c = r.get("vs_handset_final"), r.get("vs_handset_curve")
        cell = (lambda x: f"{x['mean']:+.4f} [{x['low']:+.4f}, {x['high']:+.4f}]" if x else "")
        print(f"{r['arm']:<11} {r.get('outer_steps', 0):>6} {r['final_mean']['value']:>8.4f}  {cell(d):>28}  "
              f"{cell(c):>26}  {'/'.join(map(str, r.get('wins_ties_losses', []))):>10}  "
              f"{r['snr_at_handset']['snr'] if 'snr_at_handset' in r else float('nan'):>7.4f}")
    write_json(args.out, {"study": "objectives_equal_compute", "set": "valid", "steps": args.steps,
                          "config": args.config, "arms": ARMS, "rows": rows, "machine": machine()})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
