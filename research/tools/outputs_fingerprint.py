"""Fingerprints (sha256) of the toolkit's outputs, to show a behaviour-preserving change left them byte-identical.

Runs, into a scratch folder: the default suite and its manifest (regenerated), a small evaluation of the hand-set
θ (``results.arrow``, ``eval_summary.json``), and a short meta-training run (θ after 6 outer steps, with the
held-out evaluation and a one-task panel). Prints a table and writes JSON (``--json-out``). Run it on two trees in
one session, on one machine, and compare: float results may differ between CPU models, never between trees.

    python -m research.tools.outputs_fingerprint --json-out research/results/outputs_fingerprint.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
from pathlib import Path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprints(work: Path) -> dict:
    """``{output name: sha256}`` of every output this script makes under ``work``."""
    os.environ["TASKGEN_BASELINE_CACHE"] = str(work / "baselines.arrow")
    import jax
    import numpy as np

    import taskgen
    from lopt_trainer.evaluation import EvalSettings, evaluate_theta
    from lopt_trainer.meta import MetaTrainConfig, meta_train

    out = {}
    specs = taskgen.generate_suite()
    out["suite.jsonl"] = _sha(taskgen.specs_to_jsonl(specs) if hasattr(taskgen, "specs_to_jsonl")
                              else __import__("taskgen.specfile").specfile.specs_to_jsonl(specs))
    from taskgen.manifest import write_manifest

    write_manifest(specs, work / "manifest.arrow")
    out["manifest.arrow"] = _sha((work / "manifest.arrow").read_bytes())

    settings = EvalSettings(steps=60, seeds=1, trials=(1, 2), adamlr_trials=3)
    evaluate_theta("handset", work / "eval", n_tasks=4, max_params=3000, max_flops=1_000_000, settings=settings,
                   progress=False)
    for name in ("results.arrow", "eval_summary.json"):
        out[f"eval/{name}"] = _sha((work / "eval" / name).read_bytes())

    config = MetaTrainConfig(filters={"split": ["meta_train"], "family": ["quadratic", "mlp"]}, max_params=2000,
                             steps=6, num_groups=2, tasks_per_group=2, truncation=10, horizon_min=20,
                             horizon_max=40, resample_every=3, eval_every=3, eval_tasks=1, eval_steps=20,
                             panel_every=3, panel={"families": ["quadratic"], "per_family": 1, "steps": 30, "seeds": 1},
                             checkpoint_every=2, meta_loss="outer_valid", loss_scale="initial",
                             outer_clip_value=0.1, outer_warmup=2, outer_lr=1e-3)
    result = meta_train(config, work / "meta", progress=False)
    leaves = jax.tree_util.tree_leaves(jax.device_get(result.theta))
    out["meta/theta"] = _sha(b"".join(np.asarray(x).tobytes() for x in leaves))
    metrics = [json.loads(l) for l in (work / "meta" / "metrics.jsonl").read_text().splitlines()]
    for r in metrics:  # wall-clock fields differ between any two runs
        for k in [k for k in r if k.endswith("seconds") or k == "inner_steps_per_s"]:
            r.pop(k)
    out["meta/metrics (no timings)"] = _sha(json.dumps(metrics, sort_keys=True).encode())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json-out", default=None)
    parser.add_argument("--label", default="tree")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = fingerprints(Path(tmp))
    for name, digest in figures.items():
        print(f"{name:<28} {digest}")
    if args.json_out:
        from lopt_trainer.common.run_files import write_json

        write_json(args.json_out, {"label": args.label, "sha256": figures})


if __name__ == "__main__":
    main()
