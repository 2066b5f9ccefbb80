"""Does the quality panel predict the quality benchmark? Panel scores against `make quality` scores over many θ.

Pretraining keeps the θ the panel prefers (``RUN/best_theta.npz``) and ships it only if ``make quality`` says it
wins on the *unseen* tasks (issue 19, §4). That rule works only if a θ the panel scores higher also scores higher
on the benchmark. Each ``--point LABEL PANEL_DIR QUALITY_JSON`` is one θ measured both ways: a panel evaluation
folder (``RUN/panel/step_N`` or a ``taskgen lopt panel --out`` folder, all of one panel's tasks) and a quality
benchmark result (``research/results/<label>.json``, with its per-task ``lopt_tasks``). Per θ it reports

* ``panel``: the panel score (mean over the panel's tasks of the improvement over Global AdamLR, clipped to ±3);
* ``panel_shared_families``: the same over the panel tasks of the families the benchmark's unseen tasks come from
  (the panel also holds families the benchmark's draw has none of, e.g. the language models);
* ``quality_unseen`` / ``quality_seen``: the mean score of the benchmark's unseen / seen tasks (same scale);
* ``beats_global_unseen``: the fraction of unseen tasks beating Global AdamLR (the §4 target).

and, over the θ, the Pearson and Spearman correlations of each panel figure with ``quality_unseen`` (and of
``quality_seen`` with it: whether even the benchmark's own two halves agree), each with a 90% bootstrap interval
over the θ (θ resampled with replacement, 5000 times, seed 0), over all θ and again without the first one (give
the hand-set θ first: a single outlying θ can carry a correlation). With a handful of θ the intervals are wide, and
θ from one run are not independent draws, so read them as optimistic; a correlation whose interval holds 0 says the
panel cannot tell which θ will do better on the benchmark.

Task by task (``unseen_tasks_vs_first``): for each unseen task of the benchmark, the first θ's score, the mean
score difference of the other θ from it and on how many of them the final loss is lower (by more than ε, as
``make ship`` counts "ahead"). A task that nearly all other θ lose, or win, marks a trade they share; every
comparison shares the first θ's one measurement, though, so a task it scored well on by chance reads as lost by all.

Usage: ``python -m research.panel_vs_quality --point LABEL PANEL_DIR QUALITY_JSON [--point ...]
[--name panel_vs_quality]`` (at least :data:`MIN_POINTS` points, distinct labels, panels of one task set, quality
results of one task draw). Writes ``research/results/NAME.json`` and ``NAME.png`` (panel
score against the benchmark's unseen score, one labelled dot per θ); each point keeps its panel task scores, so the
JSON holds every input figure of the panel side. A folder or file that cannot be read, or inputs that do not
match, stop with a message naming them (exit 2) before anything is written.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from research.common import RESULTS_DIR, check_results_name, save, save_figure
from research.compare_panels import panel_scores

PANEL_FIGURES = ("panel", "panel_shared_families", "quality_seen")
MIN_POINTS = 5
"""The fewest θ a run takes: with fewer, nearly every bootstrap resample of the θ repeats one, and the intervals
say nothing."""


def quality_result(path) -> tuple[dict, dict[str, dict]]:
    """``(result, tasks)``: a quality benchmark result (parsed JSON) and its per-task ``lopt_tasks``
    (``{task_id: {"group", "family", "score", "final", ...}}``), checked by
    :func:`~lopt_trainer.evaluation.compare.check_lopt_tasks` (with ``family``). Raises ``ValueError`` naming a
    file that is unreadable, has no such table, or has a malformed entry."""
    from lopt_trainer.evaluation.compare import LOPT_TASK_KEYS, check_lopt_tasks

    try:
        result = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read a quality benchmark result: {e}") from None
    try:
        return result, check_lopt_tasks(result, (*LOPT_TASK_KEYS, "family"))
    except ValueError as e:
        raise ValueError(f"{path}: {e}; measure it with the current research/quality.py") from None


def quality_tasks(path) -> dict[str, dict]:
    """The checked per-task ``lopt_tasks`` of the quality benchmark result at ``path`` (:func:`quality_result`)."""
    return quality_result(path)[1]


def check_same_draw(tables: list[dict], paths: list) -> None:
    """``ValueError`` naming the first quality result whose tasks or their groups differ from the first one's: the
    per-task comparison needs evaluations of one task draw. No tables (or one) agree trivially."""
    if not tables:
        return
    ref = {t: v["group"] for t, v in tables[0].items()}
    for tasks, path in zip(tables[1:], paths[1:]):
        mine = {t: v["group"] for t, v in tasks.items()}
        if mine != ref:
            odd = sorted(set(mine) ^ set(ref)) or sorted(t for t in ref if mine[t] != ref[t])
            raise ValueError(f"{path}: not the task draw of {paths[0]} (differs on {odd[:3]}"
                             f"{' …' if len(odd) > 3 else ''}); compare results of one quality benchmark draw")


def point(label: str, panel_dir, quality_json, tasks: dict | None = None) -> dict:
    """One θ's figures: ``label``, ``panel_dir``, ``quality`` (the inputs), ``panel_tasks`` (how many),
    ``panel``, ``panel_shared_families``, ``quality_unseen``, ``quality_seen``, ``beats_global_unseen`` (module
    docstring), ``unseen_tasks`` (how many have a score), ``shared_families`` and ``panel_task_scores`` (every
    panel task's score). ``tasks``: the result's :func:`quality_tasks`, when already read. ``ValueError`` naming an
    unreadable input or a result without a scored unseen task."""
    scores, families = panel_scores(panel_dir)
    tasks = quality_tasks(quality_json) if tasks is None else tasks
    unseen = [v for v in tasks.values() if v["group"] == "unseen" and math.isfinite(v["score"])]
    seen = [v for v in tasks.values() if v["group"] == "seen" and math.isfinite(v["score"])]
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
            "unseen_tasks": len(unseen), "shared_families": sorted(shared),
            "panel_task_scores": {t: float(scores[t]) for t in sorted(scores)}}


def tasks_vs_first(tables: list[dict]) -> list[dict]:
    """Per unseen task of the first of ``tables`` (:func:`quality_tasks` of results of one task draw,
    :func:`check_same_draw`), most lost first (NaN last): ``task``, ``first_score``, ``mean_score_diff`` (the
    other θ minus the first, over those with a finite score on both sides; NaN if none), ``ahead`` (how many of
    the other θ have a final loss lower than the first's by more than
    :data:`~lopt_trainer.evaluation.scoring.EPS`, as ``make ship`` counts) and ``of`` (how many other θ)."""
    from lopt_trainer.evaluation.scoring import EPS

    first, others = tables[0], tables[1:]
    rows = []
    for t, ref in first.items():
        if ref["group"] != "unseen":
            continue
        diffs = [o[t]["score"] - ref["score"] for o in others if math.isfinite(o[t]["score"] - ref["score"])]
        rows.append({"task": t, "first_score": ref["score"],
                     "mean_score_diff": float(np.mean(diffs)) if diffs else float("nan"),
                     "ahead": sum(o[t]["final"] < ref["final"] - EPS for o in others), "of": len(others)})
    return sorted(rows, key=lambda r: (math.isnan(r["mean_score_diff"]), r["mean_score_diff"], r["task"]))


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
    """Pearson and Spearman correlations of paired figures ``x``, ``y`` (one pair per θ, NaN pairs dropped; NaN
    with fewer than 3 pairs), each with a percentile bootstrap interval at ``level`` over the pairs (``n_boot``
    resamples from ``seed``; resamples with fewer than 3 distinct pairs, or a constant side, are left out).
    Returns ``{"n", "pearson", "spearman"}``, each correlation ``{"r", "low", "high"}``."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    out = {"n": int(x.size)}
    idx = np.random.default_rng(seed).integers(0, x.size, size=(n_boot, x.size)) if x.size >= 3 else []
    idx = [i for i in idx if np.unique(i).size >= 3]
    tail = (1.0 - level) / 2.0
    for name, f in (("pearson", _pearson), ("spearman", lambda a, b: _pearson(_ranks(a), _ranks(b)))):
        r = f(x, y) if x.size >= 3 else float("nan")
        boots = np.asarray([f(x[i], y[i]) for i in idx], np.float64)
        boots = boots[np.isfinite(boots)]
        low, high = (float(np.quantile(boots, tail)), float(np.quantile(boots, 1 - tail))) if boots.size else \
            (float("nan"), float("nan"))
        out[name] = {"r": r, "low": low, "high": high}
    return out


def _load(parser, specs) -> tuple[list[dict], list[dict]]:
    """The points and quality tables of the ``--point`` arguments; exits 2 naming the first bad input."""
    labels = [label for label, _, _ in specs]
    if len(set(labels)) < len(labels):
        parser.exit(2, f"error: --point labels repeat ({sorted({x for x in labels if labels.count(x) > 1})}); "
                       "give each θ its own label\n")
    try:
        tables = [quality_tasks(q) for _, _, q in specs]
        check_same_draw(tables, [q for _, _, q in specs])
        points = [point(label, panel, q, tasks) for (label, panel, q), tasks in zip(specs, tables)]
    except ValueError as e:
        parser.exit(2, f"error: {e}\n")
    for p in points[1:]:
        if set(p["panel_task_scores"]) != set(points[0]["panel_task_scores"]):
            parser.exit(2, f"error: {p['panel_dir']} holds other panel tasks than {points[0]['panel_dir']}; give "
                           "evaluations of one panel\n")
    return points, tables


def _print_correlations(title: str, correlations: dict) -> None:
    print(f"\n{title}")
    for f, c in correlations.items():
        print(f"  {f:24s} Pearson {c['pearson']['r']:+.2f} [{c['pearson']['low']:+.2f}, {c['pearson']['high']:+.2f}]"
              f"  Spearman {c['spearman']['r']:+.2f} [{c['spearman']['low']:+.2f}, {c['spearman']['high']:+.2f}]")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--point", nargs=3, action="append", required=True,
                        metavar=("LABEL", "PANEL_DIR", "QUALITY_JSON"), help="one θ measured both ways (repeatable)")
    parser.add_argument("--name", default="panel_vs_quality", help="results file name (research/results/NAME.json)")
    args = parser.parse_args(argv)
    check_results_name(parser, args.name)
    if len(args.point) < MIN_POINTS:
        parser.error(f"--point: give at least {MIN_POINTS} θ (got {len(args.point)}); fewer make the bootstrap "
                     "intervals of a correlation meaningless")
    points, tables = _load(parser, args.point)
    unseen = [p["quality_unseen"] for p in points]
    correlations = {f: correlation([p[f] for p in points], unseen) for f in PANEL_FIGURES}
    without_first = {f: correlation([p[f] for p in points[1:]], unseen[1:]) for f in PANEL_FIGURES}
    rows = [{k: p[k] for k in ("label", "panel", "panel_shared_families", "quality_unseen", "quality_seen",
                                "beats_global_unseen")} for p in points]
    by_task = tasks_vs_first(tables)
    save(args.name, rows, {"points": points, "correlations_with_quality_unseen": correlations,
                           "correlations_without_first": without_first, "unseen_tasks_vs_first": by_task})
    print(f"\nunseen tasks, the other θ against {points[0]['label']}:")
    for r in by_task:
        print(f"  {r['task']:36s} {points[0]['label']} {r['first_score']:+.2f}  others {r['mean_score_diff']:+.2f} "
              f"on average, ahead on {r['ahead']}/{r['of']}")
    _print_correlations(f"correlation with the benchmark's unseen score, over {len(points)} θ (90% bootstrap "
                        "interval):", correlations)
    _print_correlations(f"the same without {points[0]['label']}, over {len(points) - 1} θ:", without_first)
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
