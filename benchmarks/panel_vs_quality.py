"""Does the quality panel predict the quality benchmark? Panel scores against `make quality` scores over many θ.

Pretraining keeps the θ the panel prefers (``RUN/best_theta.npz``) and ships it only if ``make quality`` says it
wins on the *unseen* tasks (issue 19, §4). That rule works only if a θ the panel scores higher also scores higher
on the benchmark. Each ``--point LABEL PANEL_DIR QUALITY_JSON`` is one θ measured both ways: a panel evaluation
folder (``RUN/panel/step_N`` or a ``taskgen lopt panel --out`` folder, all of one panel's tasks) and a quality
benchmark result (``benchmarks/results/<label>.json``, with its per-task ``lopt_tasks``). Per θ it reports

* ``panel``: the panel score (mean over the panel's tasks of the improvement over Global AdamLR, clipped to ±3);
* ``panel_shared_families``: the same over the panel tasks of the families the benchmark's unseen tasks come from
  (the panel also holds families the benchmark's draw has none of, e.g. the language models);
* ``quality_unseen`` / ``quality_seen``: the mean score of the benchmark's unseen / seen tasks (same scale);
* ``beats_global_unseen``: the fraction of unseen tasks beating Global AdamLR (the §4 target).

and, over the θ, the Pearson and Spearman correlations of each panel figure with ``quality_unseen`` (and of
``quality_seen`` with it: whether even the benchmark's own two halves agree), each with a 90% bootstrap interval
over the θ (θ resampled with replacement, 5000 times, seed 0). With a handful of θ the intervals are wide; a
correlation whose interval holds 0 says the panel cannot tell which θ will do better on the benchmark.

Task by task (``unseen_tasks_vs_first``): for each unseen task of the benchmark, the first θ's score (give the
hand-set θ first), the mean score difference of the other θ from it and on how many of them the final loss is
lower (by more than ε, as ``make ship`` counts "ahead"). A task that every trained θ loses, or wins, is a
property of what meta-training learned, not of one θ's noise.

Usage: ``python -m benchmarks.panel_vs_quality --point LABEL PANEL_DIR QUALITY_JSON [--point ...]
[--name panel_vs_quality]`` (at least 3 points). Writes ``benchmarks/results/NAME.json`` and ``NAME.png`` (panel
score against the benchmark's unseen score, one labelled dot per θ). A folder or file that cannot be read stops
with a message naming it (exit 2) before anything is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.common import RESULTS_DIR, name_problem, save, save_figure  # noqa: E402
from benchmarks.compare_panels import panel_scores  # noqa: E402

PANEL_FIGURES = ("panel", "panel_shared_families", "quality_seen")


def quality_tasks(path) -> dict[str, dict]:
    """The per-task ``lopt_tasks`` (``group``, ``family``, ``score``) of a quality benchmark result; ``ValueError``
    naming a file that is unreadable or has none."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read a quality benchmark result: {e}") from None
    tasks = result.get("lopt_tasks") if isinstance(result, dict) else None
    if not isinstance(tasks, dict) or not tasks or not all(
            isinstance(v, dict) and {"group", "family", "score"} <= set(v) for v in tasks.values()):
        raise ValueError(f"{path}: no per-task results (lopt_tasks with group, family and score); "
                         "measure it with the current benchmarks/bench_quality.py")
    return tasks


def point(label: str, panel_dir, quality_json) -> dict:
    """One θ's figures (module docstring); ``ValueError`` naming an unreadable input."""
    scores, families = panel_scores(panel_dir)
    tasks = quality_tasks(quality_json)
    unseen = [v for v in tasks.values() if v["group"] == "unseen" and np.isfinite(v["score"])]
    seen = [v for v in tasks.values() if v["group"] == "seen" and np.isfinite(v["score"])]
    if not unseen:
        raise ValueError(f"{quality_json}: no unseen task with a score")
    shared = {v["family"] for v in unseen}
    on_shared = [s for t, s in scores.items() if families[t] in shared]
    return {"label": label, "panel_dir": str(panel_dir), "quality": str(quality_json), "panel_tasks": len(scores),
            "panel": float(np.mean(list(scores.values()))),
            "panel_shared_families": float(np.mean(on_shared)) if on_shared else float("nan"),
            "quality_unseen": float(np.mean([v["score"] for v in unseen])),
            "quality_seen": float(np.mean([v["score"] for v in seen])) if seen else float("nan"),
            "beats_global_unseen": float(np.mean([v["score"] > 0 for v in unseen])),
            "unseen_tasks": len(unseen), "shared_families": sorted(shared)}


def tasks_vs_first(points: list[dict]) -> list[dict]:
    """Per unseen task of the first point's benchmark result, most lost first: ``task``, ``first_score``,
    ``mean_score_diff`` (the other θ minus the first), ``ahead`` (how many of the other θ have a lower final loss
    by more than :data:`~lopt_trainer.evaluation.scoring.EPS`), ``of`` (how many other θ have the task)."""
    from lopt_trainer.evaluation.scoring import EPS

    first, others = quality_tasks(points[0]["quality"]), [quality_tasks(p["quality"]) for p in points[1:]]
    rows = []
    for t, ref in first.items():
        if ref["group"] != "unseen":
            continue
        mine = [o[t] for o in others if t in o]
        diffs = [m["score"] - ref["score"] for m in mine]
        rows.append({"task": t, "first_score": ref["score"],
                     "mean_score_diff": float(np.mean(diffs)) if diffs else float("nan"),
                     "ahead": sum(m["final"] < ref["final"] - EPS for m in mine), "of": len(mine)})
    return sorted(rows, key=lambda r: (r["mean_score_diff"], r["task"]))


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks of ``x`` (ties get their mean rank), for Spearman's correlation."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    for v in np.unique(x):
        tie = x == v
        ranks[tie] = ranks[tie].mean()
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r; NaN when either side is constant."""
    if np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def correlation(x, y, *, n_boot: int = 5000, level: float = 0.9, seed: int = 0) -> dict:
    """Pearson and Spearman correlations of paired figures ``x``, ``y`` (one pair per θ, NaN pairs dropped), each
    with a percentile bootstrap interval at ``level`` over the pairs (resamples where a side is constant are left
    out). Returns ``{"n", "pearson", "spearman"}``, each correlation ``{"r", "low", "high"}``."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    out = {"n": int(x.size)}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size)) if x.size else np.zeros((0, 0), int)
    tail = (1.0 - level) / 2.0
    for name, f in (("pearson", _pearson), ("spearman", lambda a, b: _pearson(_ranks(a), _ranks(b)))):
        r = f(x, y) if x.size >= 3 else float("nan")
        boots = np.asarray([f(x[i], y[i]) for i in idx]) if x.size >= 3 else np.asarray([])
        boots = boots[np.isfinite(boots)]
        low, high = (float(np.quantile(boots, tail)), float(np.quantile(boots, 1 - tail))) if boots.size else \
            (float("nan"), float("nan"))
        out[name] = {"r": r, "low": low, "high": high}
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--point", nargs=3, action="append", required=True,
                        metavar=("LABEL", "PANEL_DIR", "QUALITY_JSON"), help="one θ measured both ways (repeatable)")
    parser.add_argument("--name", default="panel_vs_quality", help="results file name (benchmarks/results/NAME.json)")
    args = parser.parse_args(argv)
    if name_problem(args.name):
        parser.error(f"--name {name_problem(args.name)}")
    if len(args.point) < 3:
        parser.error(f"--point: give at least 3 θ (got {len(args.point)}); a correlation needs them")
    try:
        points = [point(*p) for p in args.point]
    except ValueError as e:
        parser.exit(2, f"error: {e}\n")
    sizes = {p["panel_tasks"] for p in points}
    if len(sizes) > 1:
        parser.exit(2, f"error: the panel folders hold different numbers of tasks ({sorted(sizes)}); "
                       "give evaluations of one panel\n")
    unseen = [p["quality_unseen"] for p in points]
    correlations = {f: correlation([p[f] for p in points], unseen) for f in PANEL_FIGURES}
    rows = [{k: p[k] for k in ("label", "panel", "panel_shared_families", "quality_unseen", "quality_seen",
                                "beats_global_unseen")} for p in points]
    by_task = tasks_vs_first(points)
    save(args.name, rows, {"points": points, "correlations_with_quality_unseen": correlations,
                           "unseen_tasks_vs_first": by_task})
    print(f"\nunseen tasks, the other θ against {points[0]['label']}:")
    for r in by_task:
        print(f"  {r['task']:36s} {points[0]['label']} {r['first_score']:+.2f}  others {r['mean_score_diff']:+.2f} "
              f"on average, ahead on {r['ahead']}/{r['of']}")
    print("\ncorrelation with the benchmark's unseen score, over", len(points), "θ (90% bootstrap interval):")
    for f, c in correlations.items():
        print(f"  {f:24s} Pearson {c['pearson']['r']:+.2f} [{c['pearson']['low']:+.2f}, {c['pearson']['high']:+.2f}]"
              f"  Spearman {c['spearman']['r']:+.2f} [{c['spearman']['low']:+.2f}, {c['spearman']['high']:+.2f}]")
    plot(points, RESULTS_DIR / f"{args.name}.png")


def plot(points: list[dict], path: Path) -> None:
    """Panel score (all tasks, and on the shared families) against the benchmark's unseen score, a dot per θ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, key, title in ((axes[0], "panel", "panel, all tasks"),
                           (axes[1], "panel_shared_families", "panel, the benchmark's unseen families")):
        for p in points:
            ax.plot(p[key], p["quality_unseen"], "o", color="C0")
            ax.annotate(p["label"], (p[key], p["quality_unseen"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.set_xlabel(f"{title} (mean score)")
        ax.set_ylabel("make quality, unseen tasks (mean score)")
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
