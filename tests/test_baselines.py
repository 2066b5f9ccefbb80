"""Baseline optimizers: hand-computed first steps, schedules, grids, seeded draws, selection helpers."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lopt_trainer.inner import baselines, opt_list, selection

P0 = np.array([0.5, -1.0, 2.0], np.float32)


def grad(p):
    """Gradient of the toy loss sum(c·p²) with c = (1, 2, 3)."""
    return 2.0 * np.array([1.0, 2.0, 3.0], np.float32) * p


def run_optax(tx, n_steps):
    params = {"p": jnp.asarray(P0)}
    state = tx.init(params)
    out = []
    for _ in range(n_steps):
        g = {"p": jnp.asarray(grad(np.asarray(params["p"])))}
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
        out.append(np.asarray(params["p"], np.float64))
    return out


# ------------------------------------------------------------------------------------------------ AdamLR


def test_adam_lr_grid_values():
    grid = baselines.trial_grid("adamlr")
    assert len(grid) == 14 == len(baselines.ADAM_LR_GRID)
    lrs = [h["learning_rate"] for h in grid]
    np.testing.assert_allclose(lrs, baselines.ADAM_LR_GRID, rtol=1e-12)
    assert lrs[0] == pytest.approx(1e-7)
    assert lrs[2] == pytest.approx(1e-6)
    assert lrs[1] == pytest.approx(10**-6.5)
    assert lrs[-1] == pytest.approx(10**-0.5)
    np.testing.assert_allclose(np.diff(np.log10(lrs)), 0.5, rtol=1e-9)


def test_adamlr_first_two_steps_by_hand():
    lr = 0.1
    p1, p2 = run_optax(baselines.make_optimizer("adamlr", {"learning_rate": lr}, 100), 2)
    b1, b2, eps = 0.9, 0.999, 1e-8
    p = P0.astype(np.float64)
    # step 1: m = (1-b1) g, v = (1-b2) g², m̂ = g, v̂ = g² → p - lr·g/(|g| + eps)
    g = grad(p)
    m, v = (1 - b1) * g, (1 - b2) * g * g
    step1 = p - lr * (m / (1 - b1)) / (np.sqrt(v / (1 - b2)) + eps)
    np.testing.assert_allclose(step1, p - lr * np.sign(g), rtol=1e-6)
    np.testing.assert_allclose(p1, step1, rtol=1e-6)
    # step 2
    g = grad(step1)
    m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    step2 = step1 - lr * (m / (1 - b1**2)) / (np.sqrt(v / (1 - b2**2)) + eps)
    np.testing.assert_allclose(p2, step2, rtol=1e-5)


# ------------------------------------------------------------------------------------------------ Adam8p


def test_adam8p_first_two_steps_by_hand():
    hp = dict(learning_rate=0.05, beta1=0.8, beta2=0.99, epsilon=1e-3, linear_decay=1e-5,
              exponential_decay=1e-4, l1=0.01, l2=0.02)
    T = 100  # decays are per step of a 10k run → s = t·100
    p1, p2 = run_optax(baselines.make_optimizer("adam8p", hp, T), 2)
    b1, b2, eps = hp["beta1"], hp["beta2"], hp["epsilon"]

    def lr_at(t):
        s = t * 10000 / T
        return hp["learning_rate"] * max(1 - hp["linear_decay"] * s, 0) * math.exp(-hp["exponential_decay"] * s)

    assert lr_at(0) == hp["learning_rate"]
    p = P0.astype(np.float64)
    m = v = 0.0
    expected = []
    for t in range(2):
        g = grad(p) + hp["l1"] * np.sign(p) + 2 * hp["l2"] * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mh, vh = m / (1 - b1 ** (t + 1)), v / (1 - b2 ** (t + 1))
        p = p - lr_at(t) * mh / (np.sqrt(vh + 1e-10) + eps)
        expected.append(p)
    np.testing.assert_allclose(p1, expected[0], rtol=1e-5)
    np.testing.assert_allclose(p2, expected[1], rtol=1e-5)


def test_adam8p_schedule_rescaled_to_run_length():
    sched = baselines.adam8p_schedule(1.0, 1e-4, 0.0, total_steps=1000)
    # 1e-4 per step of a 10k run: linear factor hits 0 exactly at the end of any run length.
    np.testing.assert_allclose([float(sched(t)) for t in (0, 250, 500, 1000, 1500)], [1, 0.75, 0.5, 0, 0], atol=1e-6)
    sched = baselines.adam8p_schedule(2.0, 0.0, 1e-3, total_steps=20000)
    np.testing.assert_allclose(float(sched(20000)), 2.0 * math.exp(-10.0), rtol=1e-5)


def test_adam8p_draws_seeded_in_range_and_prefix_stable():
    a = baselines.trial_grid("adam8p", 20, seed=3)
    b = baselines.trial_grid("adam8p", 20, seed=3)
    assert a == b
    assert baselines.trial_grid("adam8p", 5, seed=3) == a[:5]
    assert baselines.trial_grid("adam8p", 5, seed=4) != a[:5]
    for hp in a:
        for name, (lo, hi, kind) in baselines.ADAM8P_RANGES.items():
            x = 1 - hp[name] if kind == "one_minus" else hp[name]
            assert lo <= x <= hi, (name, x)
    lrs = np.log10([h["learning_rate"] for h in baselines.sample_adam8p(400, seed=0)])
    assert -8 < lrs.min() < -7 and 0 < lrs.max() < 1  # spread over the whole log range


# ------------------------------------------------------------------------------------------ NAdamW / opt_list


def test_opt_list_shipped_and_first_n():
    assert opt_list.opt_list_size() == 1000
    first = opt_list.opt_list_trials(3)
    assert first[0]["learning_rate"] == pytest.approx(0.0011948335721160095)
    assert first[1]["use_nesterov"] is True
    assert baselines.trial_grid("opt_list", 7)[:3] == first
    with pytest.raises(ValueError):
        opt_list.opt_list_trials(1001)


def test_cosine_schedule_values():
    s = baselines.cosine_warmup_schedule(1.0, 1000, warmup_fraction=0.1, constant_fraction=0.5,
                                         min_learning_rate_mult=0.01)
    vals = {t: float(s(t)) for t in (0, 50, 100, 300, 500, 750, 1000, 5000)}
    assert vals[0] == 0.0  # warmup starts at 0
    assert vals[50] == pytest.approx(0.5)
    assert vals[100] == pytest.approx(1.0) and vals[300] == pytest.approx(1.0) and vals[500] == pytest.approx(1.0)
    assert vals[750] == pytest.approx(0.01 + 0.99 * 0.5, rel=1e-5)  # halfway down the cosine
    assert vals[1000] == pytest.approx(0.01, rel=1e-4)  # ends at min_mult·lr
    assert vals[5000] == pytest.approx(0.01, rel=1e-4)


def test_cosine_schedule_uses_min_of_warmup_and_constant():
    # TaskSet: warmup over T·min(0.6, 0.2) = 200 steps (the JAX port's max would give 600).
    s = baselines.cosine_warmup_schedule(2.0, 1000, warmup_fraction=0.6, constant_fraction=0.2,
                                         min_learning_rate_mult=0.0)
    assert float(s(100)) == pytest.approx(1.0)
    assert float(s(200)) == pytest.approx(2.0)
    assert float(s(1000)) == pytest.approx(0.0, abs=1e-6)
    # No decay when constant_fraction = 1 (no 0/0).
    s = baselines.cosine_warmup_schedule(1.0, 100, 0.0, 1.0, 0.0)
    assert [float(s(t)) for t in (0, 50, 100)] == [1.0, 1.0, 1.0]


def nadamw_by_hand(hp, T, n_steps):
    b1, b2, eps = hp["beta1"], hp["beta2"], hp["epsilon"]
    sched = baselines.cosine_warmup_schedule(hp["learning_rate"], T, hp["warmup_fraction"], hp["constant_fraction"],
                                             hp["min_learning_rate_mult"])
    p = P0.astype(np.float64)
    m = v = 0.0
    out = []
    for count in range(n_steps):
        t = count + 1
        g = grad(p) + hp["l2_weight_decay"] * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        lr_t = float(sched(count)) * math.sqrt(1 - b2**t) / (1 - b1**t)
        num = b1 * m + (1 - b1) * g if hp["use_nesterov"] else m
        p = p - lr_t * (num / (np.sqrt(v) + eps) + hp["adamw_weight_decay"] * p)
        out.append(p)
    return out


@pytest.mark.parametrize("nesterov", [False, True])
def test_nadamw_first_two_steps_by_hand(nesterov):
    hp = dict(learning_rate=0.01, beta1=0.7, beta2=0.95, epsilon=1e-2, use_nesterov=nesterov,
              adamw_weight_decay=0.1, l2_weight_decay=0.05, warmup_fraction=0.0, min_learning_rate_mult=0.1,
              constant_fraction=0.0)
    T = 4  # cosine from the first step: lr(0) = 0.01, lr(1) = 0.001 + 0.009·(cos(π/4)/2 + 0.5)
    got = run_optax(baselines.make_optimizer("opt_list", hp, T), 2)
    want = nadamw_by_hand(hp, T, 2)
    # Spell out step 1 without the schedule helper: lr_t = 0.01·sqrt(0.05)/0.3, m = 0.3g, v = 0.05g².
    g = grad(P0.astype(np.float64)) + 0.05 * P0
    m, v = 0.3 * g, 0.05 * g * g
    num = 0.7 * m + 0.3 * g if nesterov else m
    step1 = P0 - 0.01 * math.sqrt(0.05) / 0.3 * (num / (np.sqrt(v) + 1e-2) + 0.1 * P0)
    np.testing.assert_allclose(want[0], step1, rtol=1e-6)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5)


def test_opt_list_entries_first_steps_match_hand_arithmetic():
    T = 50
    for hp in opt_list.opt_list_trials(4):
        got = run_optax(baselines.make_optimizer("opt_list", hp, T), 2)
        want = nadamw_by_hand(hp, T, 2)
        np.testing.assert_allclose(got[1], want[1], rtol=2e-5, atol=1e-7)


def test_builders_accept_traced_hyperparameters():
    # vmap over a stacked batch of trials: what the inner loop does.
    trials = baselines.trial_grid("opt_list", 3)
    stacked = {k: jnp.asarray([float(t[k]) for t in trials], jnp.float32) for k in trials[0]}
    params = {"p": jnp.asarray(P0)}
    g = {"p": jnp.asarray(grad(P0))}

    def one(hp):
        tx = baselines.make_optimizer("opt_list", hp, 50)
        u, _ = tx.update(g, tx.init(params), params)
        return u["p"]

    batched = jax.vmap(one)(stacked)
    for i, hp in enumerate(trials):
        np.testing.assert_allclose(batched[i], one(hp), rtol=1e-4)  # float32 vs float64 β


def test_make_optimizer_rejects_bad_names_and_keys():
    with pytest.raises(ValueError):
        baselines.make_optimizer("sgd", {}, 10)
    with pytest.raises(ValueError, match="missing"):
        baselines.make_optimizer("adam8p", {"learning_rate": 1e-3}, 10)
    assert baselines.optimizer_factory("adamlr", 10) is baselines.optimizer_factory("adamlr", 10)


# --------------------------------------------------------------------------------------------- selection


def test_global_and_per_task_selection():
    nan = np.nan
    table = np.array([
        [1.0, 0.5, nan],
        [2.0, 3.0, 0.1],
        [1.0, 0.9, 0.2],
    ])
    idx, best = selection.select_per_task(table)
    assert idx.tolist() == [1, 2, 2]
    np.testing.assert_allclose(best, [0.5, 0.1, 0.2])
    idx2, _ = selection.select_per_task(table, n_trials=2)
    assert idx2.tolist() == [1, 0, 1]
    # Diverged counts as the task's worst finite value (1.0 on task 0): means 1.333, 1.467, 0.433.
    filled = selection.fill_diverged(table)
    assert filled[0, 2] == 1.0
    trial, mean = selection.select_global(table)
    assert trial == 2 and mean == pytest.approx((1.0 + 0.1 + 0.2) / 3)
    # A large penalty makes the diverging trial lose.
    assert selection.select_global(table, value=100.0)[0] == 0
    all_bad = np.array([[nan, np.inf]])
    idx, best = selection.select_per_task(all_bad)
    assert idx.tolist() == [0] and np.isnan(best[0])
    np.testing.assert_array_equal(selection.apply_global(table, 2), [nan, 0.1, 0.2])
