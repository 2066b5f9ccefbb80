"""The three recurrent cores really differ: parameter shapes, outputs, and one step checked by hand in numpy.

Synthetic inputs only (this tests model math, not a dataset).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from families.rnn_cores import CORES, RNNCore, aggregate, core_param_count
from tests.family_checks import param_count

E, H, B, T = 5, 7, 3, 4


def _init(core, trainable_init=False, seed=0):
    x = jax.random.normal(jax.random.PRNGKey(seed + 100), (B, T, E))
    module = RNNCore(core=core, hidden=H, trainable_init=trainable_init)
    params = module.init(jax.random.PRNGKey(seed), x)["params"]
    return module, params, x


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def _numpy_step(core, p, x, h, c):
    """One step of each core written out gate by gate in numpy."""
    w, b, u = (np.asarray(p[k], np.float64) for k in ("W", "b", "U"))
    if core == "vanilla":
        return np.tanh(x @ w + h @ u + b), None
    if core == "gru":
        wz, wr, wn = np.split(w, 3, axis=1)
        uz, ur, un = np.split(u, 3, axis=1)
        bz, br, bn = np.split(b, 3)
        z = _sig(x @ wz + h @ uz + bz)
        r = _sig(x @ wr + h @ ur + br)
        n = np.tanh(x @ wn + (r * h) @ un + bn)
        return (1 - z) * n + z * h, None
    wi, wf, wg, wo = np.split(w, 4, axis=1)
    ui, uf, ug, uo = np.split(u, 4, axis=1)
    bi, bf, bg, bo = np.split(b, 4)
    i = _sig(x @ wi + h @ ui + bi)
    f = _sig(x @ wf + h @ uf + bf)
    g = np.tanh(x @ wg + h @ ug + bg)
    o = _sig(x @ wo + h @ uo + bo)
    c = f * c + i * g
    return o * np.tanh(c), c


@pytest.mark.parametrize("core", CORES)
def test_param_shapes_and_counts(core):
    gates = {"vanilla": 1, "gru": 3, "lstm": 4}[core]
    for trainable in (False, True):
        _, params, _ = _init(core, trainable)
        assert params["W"].shape == (E, gates * H)
        assert params["U"].shape == (H, gates * H)
        assert params["b"].shape == (gates * H,)
        assert ("h0" in params) == trainable
        assert ("c0" in params) == (trainable and core == "lstm")
        assert param_count(params) == core_param_count(core, E, H, trainable)


def test_counts_differ_between_cores():
    counts = [core_param_count(c, E, H, True) for c in CORES]
    assert len(set(counts)) == 3
    assert counts[1] == 3 * (counts[0] - H) + H and counts[2] == 4 * (counts[0] - H) + 2 * H


@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("trainable", [False, True])
def test_sequence_matches_numpy(core, trainable):
    module, params, x = _init(core, trainable)
    if trainable:  # non-zero initial state, to check it is really used
        params = dict(params, h0=jnp.linspace(-0.5, 0.5, H))
        if core == "lstm":
            params["c0"] = jnp.linspace(0.3, -0.3, H)
    out = np.asarray(module.apply({"params": params}, x))
    assert out.shape == (B, T, H)
    h = np.broadcast_to(np.asarray(params.get("h0", np.zeros(H)), np.float64), (B, H))
    c = np.broadcast_to(np.asarray(params.get("c0", np.zeros(H)), np.float64), (B, H))
    xn = np.asarray(x, np.float64)
    for t in range(T):
        h, c = _numpy_step(core, params, xn[:, t], h, c)
        np.testing.assert_allclose(out[:, t], h, rtol=1e-4, atol=1e-5)


def test_hand_computed_one_step_values():
    """Scalar (E = H = 1) cores with chosen weights, against values worked out on paper."""
    x = jnp.full((1, 1, 1), 0.5)
    s = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    # vanilla: tanh(2·0.5 + 0 + 0.1)
    p = {"W": jnp.array([[2.0]]), "U": jnp.array([[3.0]]), "b": jnp.array([0.1])}
    got = RNNCore("vanilla", 1).apply({"params": p}, x)
    np.testing.assert_allclose(got[0, 0, 0], np.tanh(1.1), rtol=1e-6)
    # gru from h0 = 0: z = σ(0.5·1), n = tanh(0.5·3 + 0.2), h = (1 − z)·n
    p = {"W": jnp.array([[1.0, 2.0, 3.0]]), "U": jnp.ones((1, 3)), "b": jnp.array([0.0, 0.0, 0.2])}
    got = RNNCore("gru", 1).apply({"params": p}, x)
    np.testing.assert_allclose(got[0, 0, 0], (1 - s(0.5)) * np.tanh(1.7), rtol=1e-6)
    # lstm from (0, 0): c = σ(0.5)·tanh(1.5), h = σ(2)·tanh(c)
    p = {"W": jnp.array([[1.0, 1.0, 3.0, 4.0]]), "U": jnp.ones((1, 4)), "b": jnp.zeros(4)}
    got = RNNCore("lstm", 1).apply({"params": p}, x)
    np.testing.assert_allclose(got[0, 0, 0], s(2.0) * np.tanh(s(0.5) * np.tanh(1.5)), rtol=1e-6)


def test_outputs_differ_on_same_input():
    """Same input, same seed: the three cores give different hidden sequences (no core silently aliased)."""
    outs = {}
    for core in CORES:
        module, params, x = _init(core)
        outs[core] = np.asarray(module.apply({"params": params}, x))
    for a in CORES:
        for b in CORES:
            if a < b:
                assert not np.allclose(outs[a], outs[b], atol=1e-3), (a, b)


def test_init_deterministic():
    for core in CORES:
        _, p1, _ = _init(core, True)
        _, p2, _ = _init(core, True)
        for k in p1:
            assert np.asarray(p1[k]).tobytes() == np.asarray(p2[k]).tobytes()


def test_aggregate_respects_lengths():
    hs = jnp.arange(2 * 4 * 1, dtype=jnp.float32).reshape(2, 4, 1)  # row 0: 0..3, row 1: 4..7
    hs = hs.at[0, 3, 0].set(100.0)  # padding of row 0 (length 2) must be ignored
    lengths = jnp.array([2, 4])
    np.testing.assert_allclose(aggregate(hs, lengths, "last")[:, 0], [1.0, 7.0])
    np.testing.assert_allclose(aggregate(hs, lengths, "mean")[:, 0], [0.5, 5.5])
    np.testing.assert_allclose(aggregate(hs, lengths, "max")[:, 0], [1.0, 7.0])


def test_padding_does_not_change_earlier_states():
    module, params, x = _init("gru")
    y = x.at[:, -1].set(9.0)
    a = module.apply({"params": params}, x)
    b = module.apply({"params": params}, y)
    np.testing.assert_allclose(a[:, :-1], b[:, :-1])
