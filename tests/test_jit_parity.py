"""Jitted and eager updates of the shipped θ: equal within float tolerance, except through the reference's sign
features, whose input is a per-tensor mean that can sit at a rounding-level zero.

The hierarchical optimizer's LSTM reads ``sign(mean(m))``, ``sign(mean(v))`` and ``sign(mean(p))`` of every tensor
(Metz et al. 2020; learned_optimization's ``rnn_mlp_lopt`` has the same features). A tensor whose gradient sums to
zero by construction (the output bias of a softmax cross-entropy: ``Σ_k (p_k − y_k) = 0``) has a momentum mean of
±1e-9 or so, whose sign is decided by the last bits of the sum: jit fuses the sum differently from eager
execution, the sign flips, the LSTM input moves by 2, and a trained θ that reads the feature changes its step.
Over hundreds of steps the two trajectories then drift apart like any chaotic training run. The hand-set θ gives
the sign features only the small weights of its noise, so its two runs stay (near) bit-identical.
"""

import jax
import jax.numpy as jnp
import numpy as np

from lopt_trainer.optimizer import hierarchical as H
from lopt_trainer.optimizer.optax_api import optax_lopt
from lopt_trainer.theta.load import load_theta


def _tree(key, zero_mean_bias: float | None = None):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    params = {"w": jax.random.normal(k1, (16, 10)) * 0.3, "b": jax.random.normal(k2, (10,)) * 0.1 + 0.5}
    grads = {"w": jax.random.normal(k3, (16, 10)) * 0.1 + 0.05, "b": jax.random.normal(k4, (10,)) * 0.1 + 0.05}
    if zero_mean_bias is not None:  # a bias gradient that sums to (almost) zero, as a softmax output bias's does
        half = grads["b"][:4]
        grads["b"] = jnp.concatenate([half, -half, jnp.asarray([zero_mean_bias * 10, 0.0], jnp.float32)])
    return params, grads


def _updates(theta, params, grads, jit: bool, with_state: bool = False):
    tx = optax_lopt(theta)
    state = tx.init(params)
    update = lambda g, s, p: tx.update(g, s, p, value=jnp.float32(1.0))  # noqa: E731
    u, new = (jax.jit(update) if jit else update)(grads, state, params)
    return (u, new) if with_state else u


def _rel(a, b) -> float:
    return max(float(jnp.max(jnp.abs(x - y)) / jnp.max(jnp.abs(y))) for x, y in
               zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def test_shipped_theta_jit_equals_eager_when_no_mean_sits_at_zero():
    params, grads = _tree(jax.random.PRNGKey(0))
    theta = load_theta("pretrained")
    assert _rel(_updates(theta, params, grads, True), _updates(theta, params, grads, False)) < 1e-5


def test_the_sign_of_a_rounding_level_mean_moves_the_shipped_thetas_step():
    """The mechanism, without relying on how a machine rounds: the same tensor with a momentum mean of +1e-9
    and of −1e-9 (both zero to float32 rounding of a sum) gets visibly different steps from the shipped θ, and
    far closer ones from the hand-set θ."""
    theta = load_theta("pretrained")
    params, up = _tree(jax.random.PRNGKey(1), zero_mean_bias=1e-9)
    _, down = _tree(jax.random.PRNGKey(1), zero_mean_bias=-1e-9)
    assert float(jnp.mean(up["b"])) > 0 > float(jnp.mean(down["b"]))
    assert _rel(up, down) < 1e-6  # the inputs differ at the rounding level
    (u_up, s_up), (u_down, s_down) = (_updates(theta, params, g, True, with_state=True) for g in (up, down))
    assert _rel(s_up.lstm_hidden, s_down.lstm_hidden) > 1e-3  # the LSTM sees an input that moved by 2
    assert _rel(u_up, u_down) > 2e-5  # 100× what rounding moves (first test), from the first step on
    handset = load_theta("handset")  # its sign-feature weights are only the hand-set rule's small noise
    assert _rel(u_up, u_down) > 10 * _rel(_updates(handset, params, up, True), _updates(handset, params, down, True))
    names = [n for n, w in H.F.lstm_input_layout(H.DEFAULT_CONFIG) for _ in range(w)]
    assert {"mean_ms_sign", "mean_sign", "mean_v_sign"} <= set(names)  # the reference's sign features
