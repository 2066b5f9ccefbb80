"""The evaluation metric on constructed cases (known winner, tie, divergence), speedup, AUC, and the results
table built from synthetic run records (no training)."""

import math

import numpy as np
import pytest

from lopt_trainer.evaluation import scoring as M
from lopt_trainer.evaluation.settings import EVAL_BASELINES as BASELINES, LOPT, EvalSettings
from lopt_trainer.evaluation.scoring import baseline_of, build_rows, choose_trials, label, row_names, rows_to_table
from lopt_trainer.evaluation.tasks import EvalTask

STEPS = [0, 5, 10]
SETTINGS = EvalSettings(steps=10, seeds=2, trials=(1, 2), adamlr_trials=3, eval_every=5)


def test_known_winner_positive():
    best = 0.1
    assert M.improvement(0.1, 1.0, best) == pytest.approx(math.log(0.9 + M.EPS) - math.log(M.EPS))
    assert M.improvement(0.5, 1.0, best) > 0
    assert M.improvement(1.0, 0.5, best) < 0
    assert M.improvement(1.0, 0.5, best) == pytest.approx(-M.improvement(0.5, 1.0, best))


def test_tie_is_zero():
    assert M.improvement(0.7, 0.7, 0.2) == 0.0
    assert M.improvement(0.2, 0.2, 0.2) == 0.0


def test_divergence_counts_as_worst():
    curves = np.asarray([[5.0, 2.0, 1.0], [5.0, np.nan, np.nan]])
    worst = M.worst_value(curves)
    assert worst == 5.0
    assert M.final_value(curves[1], True, worst) == 5.0
    assert M.final_value(curves[0], False, worst) == 1.0
    assert M.final_value([5.0, 2.0, 1.0], True, worst) == 5.0  # flagged diverged wins over a finite last point
    lopt_diverged = M.improvement(M.final_value(curves[1], True, worst), 1.0, 1.0)
    assert lopt_diverged < 0
    base_diverged = M.improvement(1.0, M.final_value(curves[1], True, worst), 1.0)
    assert base_diverged > 0
    assert M.auc(STEPS, curves[1], worst) == pytest.approx(5.0)
    assert M.worst_value([np.nan, np.inf]) == 10.0


def test_auc_and_best_known():
    assert M.auc(STEPS, [2.0, 2.0, 2.0], 9.0) == pytest.approx(2.0)
    assert M.auc(STEPS, [2.0, 1.0, 0.0], 9.0) == pytest.approx(1.0)
    assert M.best_known([np.nan, 3.0, 1.5]) == 1.5
    assert math.isnan(M.best_known([np.nan]))


def test_speedup():
    lopt = [5.0, 1.0, 0.5]
    # baseline reaches 0.5 only at the last step: lopt needs 10 steps, baseline 10 -> 1
    assert M.speedup(STEPS, lopt, False, [5.0, 2.0, 0.5]) == (10.0, 1.0)
    # baseline never reaches it
    reach, s = M.speedup(STEPS, lopt, False, [5.0, 2.0, 0.9])
    assert math.isinf(reach) and math.isinf(s)
    # lopt reaches its final loss at step 5, baseline at step 10 -> 2x
    assert M.speedup(STEPS, [5.0, 0.5, 0.5], False, [5.0, 1.0, 0.4]) == (10.0, 2.0)
    # baseline faster
    assert M.speedup(STEPS, lopt, False, [5.0, 0.4, 0.3]) == (5.0, 0.5)
    assert all(math.isnan(x) for x in M.speedup(STEPS, [5.0, np.nan, np.nan], True, [5.0, 1.0, 0.4]))


def test_summarize():
    s = M.summarize([1.0, -1.0, 2.0, np.nan])
    assert s["n"] == 3 and s["median"] == 1.0 and s["frac_positive"] == pytest.approx(2 / 3)
    assert M.summarize([])["n"] == 0


# ------------------------------------------------------------------------------------ synthetic records


def make_spec(i: int, split: str):
    from taskgen import TaskSpec, get_family

    config = {"problem": "bowl", "cond": 1.0 + i, "angle": 0.0, "noise_std": 0.0,
              "start_box": [[-5.0, 5.0], [-5.0, 5.0]]}
    return TaskSpec.create("twod", get_family("twod").version, i, config, split)


def synthetic_tasks():
    """Two tasks: ``seen`` (meta_train) and ``unseen`` (meta_test)."""
    return [EvalTask(make_spec(0, "meta_train"), "seen", "twod/bowl"),
            EvalTask(make_spec(1, "meta_test"), "unseen", "twod/bowl")]


def _rec(task_id, opt, trial, seed, curve, diverged=False):
    return {"task_id": task_id, "optimizer": opt, "trial": trial, "seed": seed, "hparams": None, "steps": STEPS,
            "select_curve": curve, "report_curve": curve, "diverged": diverged, "diverged_at": -1}


def synthetic_records(tasks, lopt_final=(0.2, 3.0)):
    """Records where, on task 0, lopt wins (0.2) and, on task 1, lopt diverges; baselines: trial 1 best."""
    records = {}
    for k, t in enumerate(tasks):
        lo = [5.0, 1.0, lopt_final[k]] if k == 0 else [5.0, None, None]
        records[(t.task_id, LOPT)] = {(0, s): _rec(t.task_id, LOPT, 0, s, lo, diverged=k == 1) for s in (0, 1)}
        for b in BASELINES:
            n = len(SETTINGS.trial_hparams(b))
            d = {}
            for trial in range(n):
                final = 1.0 if trial == 1 else 2.0
                for s in (0, 1):
                    d[(trial, s)] = _rec(t.task_id, b, trial, s, [5.0, 3.0, final])
            records[(t.task_id, b)] = d
    return records


def test_choose_trials_global_and_per_task():
    tasks = synthetic_tasks()
    chosen = choose_trials(tasks, synthetic_records(tasks), SETTINGS)
    assert chosen["global_adamlr"] == {t.task_id: 1 for t in tasks}
    assert chosen["per_task_adam8p@1"] == {t.task_id: 0 for t in tasks}  # budget 1: only trial 0
    assert chosen["per_task_adam8p@2"] == {t.task_id: 1 for t in tasks}
    assert set(chosen) == set(row_names(SETTINGS)) - {LOPT}


def test_rows_known_winner_and_divergence():
    tasks = synthetic_tasks()
    rows = build_rows(tasks, synthetic_records(tasks), SETTINGS)
    assert len(rows) == 2 * len(row_names(SETTINGS)) * 2
    win = [r for r in rows if r["task_id"] == tasks[0].task_id and r["optimizer"] == "global_adamlr"]
    assert all(r["improvement_final"] > 0 and r["best_known_final"] == 0.2 for r in win)
    lose = [r for r in rows if r["task_id"] == tasks[1].task_id and r["optimizer"] == "global_adamlr"]
    assert all(r["improvement_final"] < 0 and math.isnan(r["speedup"]) for r in lose)
    lopt_rows = [r for r in rows if r["task_id"] == tasks[1].task_id and r["optimizer"] == LOPT]
    assert all(r["diverged"] and r["final"] == 5.0 for r in lopt_rows)
    table = rows_to_table(rows)
    assert table.num_rows == len(rows) and table.column("curve").type.value_type.bit_width == 64


def test_tie_rows():
    tasks = synthetic_tasks()[:1]
    records = synthetic_records(tasks, lopt_final=(1.0, 1.0))
    rows = build_rows(tasks, records, SETTINGS)
    tie = [r for r in rows if r["optimizer"] == "global_opt_list"]
    assert all(r["improvement_final"] == 0.0 for r in tie)


def test_names():
    assert baseline_of("per_task_opt_list@10") == "opt_list"
    assert baseline_of("global_adam8p") == "adam8p"
    assert label("per_task_adam8p@10") == "Per-task Adam8p (10)"
    assert label("global_adamlr") == "Global AdamLR"


def test_select_tasks_halves_and_held_out():
    from taskgen import generate_suite
    from lopt_trainer.evaluation.tasks import held_out_variants, select_tasks

    specs = generate_suite(["twod"], per_family=60, seed=0)
    a = select_tasks(specs, 10, seed=3)
    b = select_tasks(specs, 10, seed=3)
    assert [t.task_id for t in a] == [t.task_id for t in b]
    assert sum(t.group == "seen" for t in a) == 5 and sum(t.group == "unseen" for t in a) == 5
    assert all(t.spec.split == ("meta_train" if t.group == "seen" else "meta_test") for t in a)
    assert "twod/beale" in held_out_variants(a, specs)
    assert [t.task_id for t in select_tasks(specs, 10, seed=4)] != [t.task_id for t in a]
