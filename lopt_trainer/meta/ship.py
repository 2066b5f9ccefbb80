"""Shipping a θ only when it wins: the quality benchmark's targets (issue 19, section 4) checked before a run's θ
replaces the package's ``pretrained_theta.npz``.

``make pretrain`` writes its panel-best θ as a *candidate* (``RUN/candidate/``); ``make quality THETA=…`` measures
it; :func:`ship` copies it into the package data only when that measurement meets every target
(:func:`quality_shortfalls`), and otherwise says which targets fell short and writes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from lopt_trainer.errors import ShipRefusedError
from lopt_trainer.meta.export import export_run

TARGETS = {"global_adamlr": ("frac_lopt_better", 0.60), "per_task_adamlr@14": ("frac_lopt_better", 0.25)}
"""Unseen-task targets: the fraction of tasks on which the learned optimizer beats each baseline."""


def quality_shortfalls(quality: dict) -> list[str]:
    """The targets a quality benchmark result (``benchmarks/results/LABEL.json`` of ``make quality``) misses,
    each as one line; empty when it meets them all: on unseen tasks, beats Global AdamLR on ≥ 60% with median
    improvement > 0, beats per-task AdamLR@14 on ≥ 25%, and no learned-optimizer run diverged. ``ValueError``
    when the result lacks the unseen rows of either baseline."""
    rows = {r["baseline"]: r for r in quality.get("rows", []) if r.get("group") == "unseen"}
    out = []
    for baseline, (field, need) in TARGETS.items():
        if baseline not in rows:
            raise ValueError(f"quality result has no unseen row for {baseline}")
        got = float(rows[baseline][field])
        if got < need:
            out.append(f"unseen tasks beaten over {baseline}: {got:.0%} (target ≥ {need:.0%})")
    median = float(rows["global_adamlr"]["median_improvement"])
    if not median > 0:
        out.append(f"median improvement over global_adamlr on unseen tasks: {median:+.3f} (target > 0)")
    diverged = int((quality.get("lopt_divergence") or {}).get("diverged", 0))
    if diverged:
        out.append(f"learned-optimizer runs diverged: {diverged} (target 0)")
    return out


def ship(run_dir, quality_file, dest_dir=None) -> Path:
    """Copy the θ of the run in ``run_dir`` (its panel-best, as :func:`~lopt_trainer.meta.export.export_run`
    chooses) into the package data (or ``dest_dir``) when ``quality_file`` meets the targets; returns the path
    written. :class:`~lopt_trainer.errors.ShipRefusedError` listing the shortfalls otherwise (nothing written)."""
    quality = json.loads(Path(quality_file).read_text())
    short = quality_shortfalls(quality)
    if short:
        raise ShipRefusedError(f"{quality_file}: not shipped, the θ misses " + "; ".join(short))
    return export_run(run_dir, dest_dir)
