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
from lopt_trainer.theta.load import load_theta, theta_digest

TARGETS = {"global_adamlr": ("frac_lopt_better", 0.60), "per_task_adamlr@14": ("frac_lopt_better", 0.25)}
"""Unseen-task targets: the fraction of tasks on which the learned optimizer beats each baseline."""


def quality_shortfalls(quality: dict) -> list[str]:
    """The targets a quality benchmark result (``benchmarks/results/LABEL.json`` of ``make quality``) misses,
    each as one line; empty when it meets them all: on unseen tasks, beats Global AdamLR on ≥ 60% with median
    improvement > 0, beats per-task AdamLR@14 on ≥ 25%, and no learned-optimizer run diverged. ``ValueError``
    when the result lacks the unseen rows of either baseline."""
    rows = {r.get("baseline"): r for r in quality.get("rows", []) if isinstance(r, dict) and r.get("group") == "unseen"}
    out = []
    for baseline, (field, need) in TARGETS.items():
        got = _number(rows.get(baseline, {}), field, f"the unseen {baseline} row")
        if got < need:
            out.append(f"unseen tasks beaten over {baseline}: {got:.0%} (target ≥ {need:.0%})")
    median = _number(rows["global_adamlr"], "median_improvement", "the unseen global_adamlr row")
    if not median > 0:
        out.append(f"median improvement over global_adamlr on unseen tasks: {median:+.3f} (target > 0)")
    measured = ((quality.get("targets") or {}).get("unseen_diverged") or {}).get("measured")
    diverged = int(measured if measured is not None else (quality.get("lopt_divergence") or {}).get("diverged", 0))
    if diverged:
        out.append(f"learned-optimizer runs diverged on unseen tasks: {diverged} (target 0)")
    return out


def _number(row: dict, field: str, where: str) -> float:
    value = row.get(field)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"quality result: {where} has no number {field!r} (got {value!r})")
    return float(value)


def ship(run_dir, quality_file, dest_dir=None) -> Path:
    """Copy the panel-best θ of the run in ``run_dir`` (``RUN/best_theta.npz``) into the package data (or
    ``dest_dir``) when ``quality_file`` meets the targets and measured that very θ (its ``theta`` file has the
    digest ``RUN/best.json`` records); returns the path written. :class:`~lopt_trainer.errors.ShipRefusedError`
    naming the shortfalls or the mismatch otherwise (nothing written)."""
    quality = json.loads(Path(quality_file).read_text())
    short = quality_shortfalls(quality)
    if short:
        raise ShipRefusedError(f"{quality_file}: not shipped, the θ misses " + "; ".join(short))
    measured, best = quality.get("theta"), Path(run_dir) / "best.json"
    want = json.loads(best.read_text()).get("theta_digest") if best.is_file() else None
    try:
        got = theta_digest(load_theta(measured)) if measured else None
    except (OSError, ValueError) as e:
        raise ShipRefusedError(f"{quality_file}: not shipped, the θ it measured ({measured}) cannot be read: {e}")
    if want is None or got != want:
        raise ShipRefusedError(f"{quality_file}: not shipped, it measured {measured}, which is not the panel-best θ "
                               f"of {run_dir} (measure RUN/candidate/pretrained_theta.npz after the last "
                               "`make pretrain`)")
    return export_run(run_dir, dest_dir)
