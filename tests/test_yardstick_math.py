"""The yardstick's numbers on toy tables with known answers: normalization, clipping, L*, IQM, bootstrap
intervals, the paired difference and the win / tie / loss rule; and the scoring of θ against a toy grid."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lopt_trainer.evaluation import normalized as nz
from lopt_trainer.evaluation.baseline_table import BaselineTable
from lopt_trainer.evaluation.yardstick import ThetaRuns, compare, global_trial, score, summarize


def test_normalized_loss_known_values():
    assert nz.normalized_loss(1.0, 3.0, 1.0) == 0.0  # as good as L*
    assert nz.normalized_loss(3.0, 3.0, 1.0) == 1.0  # no better than at initialisation
    assert nz.normalized_loss(2.0, 3.0, 1.0) == 0.5
    assert nz.normalized_loss(0.5, 3.0, 1.0) == -0.25  # better than the best AdamLR


def test_normalized_loss_clips_and_divergence():
    assert nz.normalized_loss(100.0, 3.0, 1.0) == nz.CLIP_HIGH
    assert nz.normalized_loss(-100.0, 3.0, 1.0) == nz.CLIP_LOW
    assert nz.normalized_loss(math.nan, 3.0, 1.0) == nz.CLIP_HIGH
    assert nz.normalized_loss(math.inf, 3.0, 1.0) == nz.CLIP_HIGH
    # L0 == L*: a zero gap does not divide by zero; any loss above L* is "infinitely" bad, so the clip decides
    assert nz.normalized_loss(1.5, 1.0, 1.0) == nz.CLIP_HIGH
    arr = nz.normalized_loss([1.0, 2.0, math.nan], [3.0, 3.0, 3.0], 1.0)
    assert arr.tolist() == [0.0, 0.5, nz.CLIP_HIGH]


@given(st.floats(-1e3, 1e3), st.floats(0.01, 1e3), st.floats(-1e3, 1e3))
@settings(max_examples=200, deadline=None)
def test_normalized_loss_in_range_and_affine_invariant(loss, gap, best):
    n = nz.normalized_loss(loss, best + gap, best)
    assert nz.CLIP_LOW <= n <= nz.CLIP_HIGH
    # an affine change of the loss units (as the families' normalizers make within their range) keeps n
    a, b = 2.5, -7.0
    assert nz.normalized_loss(a * loss + b, a * (best + gap) + b, a * best + b) == pytest.approx(n, abs=1e-9)


def test_best_grid_loss_is_min_of_seed_means_ignoring_diverged_trials():
    grid = np.asarray([[[3.0, 5.0], [2.0, 2.0], [1.0, np.nan]]])  # 1 task, 3 trials, 2 seeds
    assert nz.best_grid_loss(grid).tolist() == [2.0]  # trial 2 diverged on a seed: excluded
    assert math.isnan(nz.best_grid_loss(np.full((1, 2, 2), np.nan))[0])


def test_best_trials_take_the_lowest_seed_mean_and_skip_diverged_trials():
    grid = np.asarray([[[3.0, 5.0], [2.0, 2.0], [1.0, np.nan]],     # trial 2 diverged on a seed
                       [[0.5, 0.7], [2.0, 2.0], [1.0, 1.0]]])
    assert nz.best_trials(grid).tolist() == [1, 0]
    assert nz.best_trials(np.full((1, 3, 2), np.nan)).tolist() == [0]


def test_iqm_drops_quarters():
    assert nz.iqm([1, 2, 3, 4]) == 2.5
    assert nz.iqm([0, 1, 2, 3, 4, 5, 6, 100]) == 3.5  # drops 0, 1 and 6, 100
    assert math.isnan(nz.iqm([]))


def test_bootstrap_summary_constant_and_coverage():
    s = nz.bootstrap_summary([0.3] * 12, ["a"] * 6 + ["b"] * 6)
    for k in ("mean", "median", "iqm"):
        assert s[k] == {"value": pytest.approx(0.3), "low": pytest.approx(0.3), "high": pytest.approx(0.3)}
    rng = np.random.default_rng(1)
    x = rng.normal(1.0, 1.0, 400)
    s = nz.bootstrap_summary(x)
    assert s["mean"]["low"] < 1.0 < s["mean"]["high"]
    assert s["mean"]["high"] - s["mean"]["low"] == pytest.approx(2 * 1.96 / 20, rel=0.2)  # ≈ 2·1.96·σ/√n


def test_bootstrap_is_stratified_and_deterministic():
    # two families with very different values: a stratified resample keeps 6 of each, so the mean never moves
    x = [0.0] * 6 + [1.0] * 6
    s = nz.bootstrap_summary(x, ["a"] * 6 + ["b"] * 6)
    assert s["mean"]["low"] == s["mean"]["high"] == 0.5
    assert nz.bootstrap_summary(x, seed=3) == nz.bootstrap_summary(x, seed=3)
    loose = nz.bootstrap_summary(x)
    assert loose["mean"]["low"] < 0.5 < loose["mean"]["high"]


def test_paired_difference_sign():
    a = np.asarray([0.1, 0.2, 0.3, 0.4])
    d = nz.paired_difference(a, a + 0.5)
    assert d["mean"] == pytest.approx(-0.5) and d["high"] == pytest.approx(-0.5) and d["tasks"] == 4


def test_win_tie_loss_rule():
    a = np.asarray([[0.10, 0.10, 0.10],   # clearly better than 0.5: win
                    [0.50, 0.50, 0.50],   # equal: tie
                    [0.90, 0.90, 0.90],   # clearly worse: loss
                    [0.40, 0.60, 0.50],   # 0.1 better on the mean but the seeds spread 0.1: tie
                    [0.5005, 0.5005, 0.5005]])  # below the floor: tie
    b = np.asarray([[0.5] * 3, [0.5] * 3, [0.5] * 3, [0.60, 0.50, 0.70], [0.5] * 3])
    out = nz.win_tie_loss(a, b)
    assert out["outcome"] == [1, 0, -1, 0, 0]
    assert (out["wins"], out["ties"], out["losses"], out["tasks"]) == (1, 3, 1, 5)
    # the spread rule: 2·sqrt(s_a²/k + s_b²/k) with sample std
    se = math.sqrt(np.var(a[3], ddof=1) / 3 + np.var(b[3], ddof=1) / 3)
    assert abs(a[3].mean() - b[3].mean()) <= 2 * se + nz.TIE_FLOOR
    with pytest.raises(ValueError, match="tasks, seeds"):
        nz.win_tie_loss(a[:, 0], b)


def _toy_base(task_ids, final, select, init=3.0, curve=None) -> BaselineTable:
    final = np.asarray(final, np.float64)
    t, k, s = final.shape
    return BaselineTable("valid", tuple(task_ids), np.logspace(-3, -1, k), np.full((t, s), init), final,
                         final + 0.5 if curve is None else curve, np.asarray(select, np.float64), {})


def test_scoring_against_a_toy_grid():
    # 2 tasks, 3 learning rates, 2 seeds. Task a: rate 1 best (L* = 1), rate 2 diverges. Task b: rate 2 best.
    final = [[[2.0, 2.0], [1.0, 1.0], [np.nan, 0.5]],
             [[2.5, 2.5], [2.0, 2.0], [1.5, 1.5]]]
    select = final  # choose on the same numbers
    base = _toy_base(["a", "b"], final, select)
    g = global_trial(base)
    # mean n per rate: rate 0: (0.5 + 1/1.5)/2, rate 1: (0 + 1/3)/2 = 0.167, rate 2: (2 + 0)/2 = 1
    assert g == 1
    runs = ThetaRuns("valid", "d", ("a", "b"), ("f1", "f2"), np.asarray([[1.0, 1.0], [0.0, np.nan]]),
                     np.asarray([[1.5, 1.5], [0.0, np.nan]]), np.asarray([[False, False], [False, True]]))
    sc = score(runs, base, g)
    assert sc.final["theta"].tolist() == [[0.0, 0.0], [-1.0, nz.CLIP_HIGH]]  # b: (0 − 1.5)/1.5 = −1; NaN → high
    assert sc.final["global_adamlr"].tolist() == [[0.0, 0.0], [pytest.approx(1 / 3)] * 2]
    assert sc.final["per_task_adamlr@14"].tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert sc.per_task_lr.tolist() == [base.lrs[1], base.lrs[2]]
    s = summarize(sc)
    assert s["rows"]["theta"]["final"]["mean"]["value"] == pytest.approx((0.0 + 0.5) / 2)
    assert s["rows"]["per_task_adamlr@14"]["final"]["mean"]["value"] == 0.0
    assert s["families"]["f2"]["theta"] == pytest.approx(0.5)
    # θ against itself: a zero difference, every task a tie
    c = compare(sc, sc)
    assert c["final"]["difference"]["mean"] == 0.0 and c["final"]["ties"] == 2


def test_scoring_refuses_other_tasks():
    base = _toy_base(["a"], [[[1.0], [2.0]]], [[[1.0], [2.0]]])
    runs = ThetaRuns("valid", "d", ("z",), ("f",), np.ones((1, 1)), np.ones((1, 1)), np.zeros((1, 1), bool))
    with pytest.raises(ValueError, match="different tasks"):
        score(runs, base, 0)


def test_the_yardstick_and_meta_training_are_exported_at_the_top():
    import lopt_trainer
    from lopt_trainer.evaluation import yardstick
    from lopt_trainer.meta.config import MetaTrainConfig
    from lopt_trainer.meta.trainer import meta_train

    assert lopt_trainer.evaluate_yardstick is yardstick.evaluate
    assert lopt_trainer.compare_yardstick is yardstick.compare
    assert lopt_trainer.meta_train is meta_train and lopt_trainer.MetaTrainConfig is MetaTrainConfig
    assert {"evaluate_yardstick", "compare_yardstick", "meta_train", "MetaTrainConfig"} <= set(lopt_trainer.__all__)
