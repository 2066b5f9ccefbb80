"""Can the yardstick tell θ apart? Its reliability over a list of θ fixed in advance.

For each θ of :data:`THETAS` (the hand-set θ, the shipped θ, and six θ of the committed pretraining history and
branches, chosen by a rule before any was measured: the main lineage's last and best θ and the late-phase
branch's first four exported θ), the mean normalized final loss on the valid set and on each half of the test set
(each family's first half of its tasks against the second half, in the set's draw order). Then:

* ``spearman_test_halves``: the Spearman rank correlation over θ of the two halves' means;
* ``spearman_valid_test``: the same between valid and the whole test set;
* ``detectable_difference``: for every pair of θ, the half-width of the paired 95 % bootstrap interval of the
  difference of their mean normalized loss on test (the smallest difference it can resolve); min / median / max.

Run from a checkout (resumable: θ runs are cached by digest under ``--cache``)::

    python -m research.yardstick_reliability [--sets valid,test] [--cache runs/yardstick/cache]

Writes ``research/results/yardstick_reliability.json`` and ``yardstick_<set>_table.json`` (each θ's headline).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
from lopt_trainer.common.machine import machine
from lopt_trainer.common.run_files import read_json, write_json
from lopt_trainer.evaluation import normalized as nz
from lopt_trainer.evaluation import yardstick
from lopt_trainer.evaluation.task_sets import load_task_set, task_set_tasks
from lopt_trainer.theta.load import load_theta, theta_digest

RESULTS = ROOT / "research" / "results"
THETAS = {
    "handset": "handset",
    "shipped": "pretrained",
    "main_last": "research/branches/main_lineage/theta_step1500.npz",
    "main_best": "lopt_trainer/data/pretrain_state/best_theta.npz",
    "late_300": "research/branches/late_meta_loss/theta_step300.npz",
    "late_450": "research/branches/late_meta_loss/theta_step450.npz",
    "late_600": "research/branches/late_meta_loss/theta_step600.npz",
    "late_750": "research/branches/late_meta_loss/theta_step750.npz",
}
"""Label → θ name, fixed before measuring (module docstring)."""
EXTRA_TEST = {"random": "random"}
"""Measured on test for the table only (not part of the reliability figures)."""


def spearman(x, y) -> float:
    """Spearman's rank correlation of two equal-length sequences (average ranks for ties)."""
    def ranks(v):
        v = np.asarray(v, np.float64)
        order = np.argsort(v, kind="stable")
        r = np.empty(v.size)
        r[order] = np.arange(v.size, dtype=np.float64)
        for value in np.unique(v):  # average the ranks of ties
            idx = v == value
            r[idx] = r[idx].mean()
        return r

    rx, ry = ranks(x), ranks(y)
    return float(np.corrcoef(rx, ry)[0, 1])


def halves(families) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the test set's two halves: each family's first half of tasks (in set order) and the rest."""
    families = np.asarray(families)
    first = np.zeros(families.size, bool)
    for f in np.unique(families):
        idx = np.flatnonzero(families == f)
        first[idx[: idx.size // 2]] = True
    return first, ~first


RUNS_DIR = ROOT / "research" / "results" / "yardstick_runs"
"""Each θ's runs in compact form (:func:`lopt_trainer.evaluation.yardstick.runs_to_dict`), committed so that a
later session scores them again without running them."""


def set_ids(set_name: str) -> list:
    """The task ids of frozen set ``set_name``, in order."""
    return [s.task_id for s in load_task_set(set_name)]


def run_rest(theta, set_name: str, cache, prefix):
    """θ's runs on ``set_name``: the committed ``prefix`` (runs on the set's first tasks, or None) and the rest run
    now (cached runs reused), joined in the set's order."""
    if prefix is None:
        return yardstick.run_theta(theta, set_name, cache=cache)
    tasks = task_set_tasks(set_name)[len(prefix.task_ids):]
    rest = yardstick.run_theta(theta, set_name, cache=cache, tasks=tasks)
    return dataclasses.replace(
        rest, task_ids=prefix.task_ids + rest.task_ids, families=prefix.families + rest.families,
        final=np.concatenate([prefix.final, rest.final]),
        curve_mean=np.concatenate([prefix.curve_mean, rest.curve_mean]),
        diverged=np.concatenate([prefix.diverged, rest.diverged]))


def evaluate_all(names: dict, set_name: str, cache) -> dict:
    """``{label: {"summary", "scores", "seconds"}}`` of each θ on ``set_name`` (committed or cached runs reused)."""
    out = {}
    for label, name in names.items():
        t0 = time.perf_counter()
        theta = load_theta(str(ROOT / name) if name.endswith(".npz") else name)
        saved = read_json(RUNS_DIR / set_name / f"{label}.json")
        timing = {"wall_s": 0.0, "compile_s": 0.0}
        ids = set_ids(set_name)
        ok = isinstance(saved, dict) and saved.get("theta_digest") == theta_digest(theta)
        if ok and saved.get("task_ids") == ids:
            runs = yardstick.runs_from_dict(saved)
            timing = {k: float(saved.get(k, 0.0)) for k in ("wall_s", "compile_s")}  # when they were made
        else:
            # a set that grew since the runs were committed: only its new tasks run (the sets only grow)
            prefix = yardstick.runs_from_dict(saved) if ok and ids[:len(saved.get("task_ids", []))] == \
                saved.get("task_ids") else None
            runs = run_rest(theta, set_name, cache, prefix)
            timing = {"wall_s": runs.wall_s, "compile_s": runs.compile_s}
            write_json(RUNS_DIR / set_name / f"{label}.json", {**yardstick.runs_to_dict(runs), **timing}, indent=None)
        summary, scores = yardstick.score_runs(runs)
        out[label] = {"summary": summary, "scores": scores, "seconds": time.perf_counter() - t0, **timing}
        m = summary["rows"]["theta"]["final"]["mean"]
        print(f"{set_name:5s} {label:10s} mean n {m['value']:+.4f} [{m['low']:+.4f}, {m['high']:+.4f}]  "
              f"{out[label]['seconds']:.0f} s now (its runs took {timing['wall_s']:.0f} s, compile "
              f"{timing['compile_s']:.0f} s, when they were made)", flush=True)
    return out


def table(results: dict) -> dict:
    """Each θ's headline on one set (the committed table)."""
    return {label: {**r["summary"], "seconds": r["seconds"], "run_seconds": r["wall_s"],
                    "compile_seconds": r["compile_s"]} for label, r in results.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="valid,test", help="Comma-separated sets to evaluate (default valid,test).")
    ap.add_argument("--cache", default=os.environ.get(yardstick.CACHE_ENV, str(ROOT / "runs" / "yardstick" / "cache")),
                    help="Cache of θ runs.")
    ap.add_argument("--only", default=None, help="Comma-separated θ labels to evaluate (default: all).")
    args = ap.parse_args(argv)
    sets = [s for s in args.sets.split(",") if s]
    names = {k: v for k, v in THETAS.items() if args.only is None or k in args.only.split(",")}
    results = {}
    for set_name in sets:
        extra = {k: v for k, v in EXTRA_TEST.items() if args.only is None or k in args.only.split(",")}
        order = {**names, **(extra if set_name == "test" else {})}
        order = {k: order[k] for k in sorted(order, key=lambda k: (k not in TABLE_FIRST, list(order).index(k)))}
        results[set_name] = evaluate_all(order, set_name, args.cache)
        write_json(RESULTS / f"yardstick_{set_name}_table.json",
                   {"set": set_name, "thetas": {k: THETAS.get(k, EXTRA_TEST.get(k)) for k in results[set_name]},
                    "table": table(results[set_name]), "machine": machine()})
        if "test" in results and sum(k in THETAS for k in results["test"]) >= 2:
            write_json(RESULTS / "yardstick_reliability.json", reliability(results))
    return 0


TABLE_FIRST = ("handset", "shipped", "main_last", "main_best", "random")
"""Measured first on a set (the claims table), then the rest of :data:`THETAS`."""


def reliability(results: dict) -> dict:
    """The reliability figures (module docstring) of ``{set: evaluate_all(...)}`` over the θ of :data:`THETAS`
    measured on test (the detectable difference from any two). The Spearman figures need all eight (and valid
    for the second); until then they are None and ``status`` says what is missing."""
    test, valid = results["test"], results.get("valid") or {}
    labels = [k for k in THETAS if k in test]
    first, second = halves(test[labels[0]]["scores"].families)
    per_task = {k: test[k]["scores"].final["theta"].mean(axis=1) for k in labels}
    h1 = [float(per_task[k][first].mean()) for k in labels]
    h2 = [float(per_task[k][second].mean()) for k in labels]
    t = [test[k]["summary"]["rows"]["theta"]["final"]["mean"]["value"] for k in labels]
    complete = len(labels) == len(THETAS)
    both = complete and all(k in valid for k in labels)
    v = [valid[k]["summary"]["rows"]["theta"]["final"]["mean"]["value"] for k in labels] if both else None
    fam = np.asarray(test[labels[0]]["scores"].families)
    widths = []
    for a, b in itertools.combinations(labels, 2):
        d = nz.paired_difference(per_task[a], per_task[b], fam)
        widths.append({"a": a, "b": b, "mean": d["mean"], "low": d["low"], "high": d["high"],
                       "half_width": (d["high"] - d["low"]) / 2})
    hw = np.asarray([w["half_width"] for w in widths])
    missing_valid = [k for k in THETAS if k not in valid]
    out = {
        "status": "complete" if both else (f"partial: {len(labels)} of the {len(THETAS)} θ scored on test and "
                                           f"{len(THETAS) - len(missing_valid)} on valid in this run; the Spearman "
                                           "figures need all eight on both"),
        "thetas": dict(THETAS), "measured": labels,
        "means": {"valid": dict(zip(labels, v)) if v else None, "test": dict(zip(labels, t)),
                  "test_half_1": dict(zip(labels, h1)), "test_half_2": dict(zip(labels, h2))},
        "spearman_test_halves": spearman(h1, h2) if complete else None,
        "spearman_test_halves_measured_only": spearman(h1, h2) if len(labels) > 2 else None,
        "spearman_valid_test": spearman(v, t) if v else None,
        "detectable_difference": ({"min": float(hw.min()), "median": float(np.median(hw)), "max": float(hw.max()),
                                   "pairs": widths} if widths else None),
        "tasks": {s: results[s][next(iter(results[s]))]["summary"]["tasks"] for s in results},
        "seeds": test[labels[0]]["summary"]["seeds"],
        "cpu": machine()["cpu"], "machine": machine(),
    }
    if complete:
        out["resolved_pairs"] = resolved_pairs(widths, {"halves": (h1, h2), "valid_test": (v, t) if v else None},
                                               labels)
        out["projected_spearman_test_halves"] = projected_spearman(per_task, labels, fam)
    print(f"{out['status']}; spearman test halves {out['spearman_test_halves']}, valid vs test "
          f"{out['spearman_valid_test']}", flush=True)
    return out


def resolved_pairs(widths: list, views: dict, labels: list) -> dict:
    """Of the pairs of θ whose paired 95 % interval on test excludes 0: how many there are, and in how many each
    other view (the two halves of test; valid against test) orders the pair the same way."""
    index = {k: i for i, k in enumerate(labels)}
    pairs = [(w["a"], w["b"]) for w in widths if w["low"] > 0 or w["high"] < 0]
    out = {"resolved": len(pairs), "of": len(widths)}
    for name, view in views.items():
        if view is None:
            continue
        x, y = view
        out[f"{name}_agree"] = sum((x[index[a]] - x[index[b]]) * (y[index[a]] - y[index[b]]) > 0 for a, b in pairs)
    return out


PROJECTED_SIZES = (120, 240, 400)
"""Test-set sizes (tasks) of the projection; 400 tasks is about what a θ may cost at 30 minutes on these cores."""


def projected_spearman(per_task: dict, labels: list, families, *, draws: int = 2000, seed: int = 0) -> dict:
    """What the two-halves Spearman over these θ would be with more tasks like the test set's: per size ``n`` of
    :data:`PROJECTED_SIZES`, draw ``n`` tasks with replacement within families (in the set's proportions), split
    each family's draw in two halves, and take the Spearman of the θ means of the halves; the median and the
    5–95 % range over ``draws`` draws. An estimate from the tasks at hand, not a run, and an optimistic one: a task
    drawn twice can fall in both halves, which makes the halves agree more than distinct tasks would."""
    rng = np.random.default_rng(seed)
    values = np.stack([per_task[k] for k in labels])  # [θ, tasks]
    families = np.asarray(families)
    groups = [np.flatnonzero(families == f) for f in np.unique(families)]
    out = {}
    for n in PROJECTED_SIZES:
        per_family = max(2, round(n / len(groups)))
        rhos = []
        for _ in range(draws):
            a, b = [], []
            for idx in groups:
                pick = rng.choice(idx, size=per_family, replace=True)
                a.append(pick[: per_family // 2])
                b.append(pick[per_family // 2:])
            a, b = np.concatenate(a), np.concatenate(b)
            rhos.append(spearman(values[:, a].mean(axis=1), values[:, b].mean(axis=1)))
        rhos = np.asarray(rhos)
        out[str(n)] = {"median": float(np.median(rhos)), "p05": float(np.quantile(rhos, 0.05)),
                       "p95": float(np.quantile(rhos, 0.95)), "tasks_per_family": per_family}
    return out


if __name__ == "__main__":
    sys.exit(main())
