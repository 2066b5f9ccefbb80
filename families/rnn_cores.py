"""The three recurrent cores shared by the text families (vanilla RNN, GRU, LSTM), as Flax linen modules.

Each core really is a different recurrence (learned_optimization built an LSTM for every core by a bug):

* ``vanilla``: ``h' = tanh(W x + U h + b)`` — one gate block.
* ``gru`` (Cho et al. 2014): ``z = σ(W_z x + U_z h + b_z)``, ``r = σ(W_r x + U_r h + b_r)``,
  ``n = tanh(W_n x + U_n (r ⊙ h) + b_n)``, ``h' = (1 − z) ⊙ n + z ⊙ h`` — three gate blocks.
* ``lstm``: ``[i, f, g, o] = W x + U h + b``; ``c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g)``, ``h' = σ(o) ⊙ tanh(c')``
  — four gate blocks and a cell state (forget bias initialised to 1).

Parameters of a core with ``G`` gate blocks, input width ``E`` and width ``H``: ``W`` (E, G·H), ``b`` (G·H,),
``U`` (H, G·H), plus a trainable initial state ``h0`` (H,) (and ``c0`` (H,) for the LSTM) when asked for.
The input projection ``W x + b`` is done for all time steps in one matmul before the scan; only the ``U h``
part runs inside ``jax.lax.scan``.
"""

from __future__ import annotations

from collections.abc import Mapping

from families._lazy import LazyModule, jax, jnp, nn


_nets = LazyModule("families.nets.rnn_cores")


def __getattr__(name):  # the Flax modules live in families.nets.rnn_cores; still importable from here
    if name in ('RNNCore',):
        return getattr(_nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

CORES = ("vanilla", "gru", "lstm")
GATES = {"vanilla": 1, "gru": 3, "lstm": 4}
AGGREGATIONS = ("last", "mean", "max")


def core_param_count(core: str, in_dim: int, hidden: int, trainable_init: bool) -> int:
    """Trainable scalars of one core (``W``, ``b``, ``U`` and the optional initial state)."""
    g = GATES[core]
    n = g * hidden * (in_dim + hidden + 1)
    if trainable_init:
        n += hidden * (2 if core == "lstm" else 1)
    return n


def core_forward_flops(core: str, in_dim: int, hidden: int) -> int:
    """Approximate forward FLOPs of one core for one token: the two matmuls (2·G·H·(E+H)) plus elementwise
    gate arithmetic (~G·H·4)."""
    g = GATES[core]
    return 2 * g * hidden * (in_dim + hidden) + 4 * g * hidden


def vanilla_step(u, h, xw):
    """One vanilla-RNN step: ``u`` (H, H), state ``h`` (B, H), projected input ``xw = W x + b`` (B, H)."""
    return jnp.tanh(xw + h @ u)


def gru_step(u, h, xw):
    """One GRU step: ``u`` (H, 3H) blocks [z, r, n], state ``h`` (B, H), ``xw`` (B, 3H)."""
    hid = h.shape[-1]
    xz, xr, xn = xw[..., :hid], xw[..., hid:2 * hid], xw[..., 2 * hid:]
    hzr = h @ u[:, :2 * hid]
    z = jax.nn.sigmoid(xz + hzr[..., :hid])
    r = jax.nn.sigmoid(xr + hzr[..., hid:])
    n = jnp.tanh(xn + (r * h) @ u[:, 2 * hid:])
    return (1.0 - z) * n + z * h


def lstm_step(u, hc, xw):
    """One LSTM step: ``u`` (H, 4H) blocks [i, f, g, o], state ``hc = (h, c)`` each (B, H), ``xw`` (B, 4H)."""
    h, c = hc
    hid = h.shape[-1]
    gates = xw + h @ u
    i, f, g, o = (gates[..., k * hid:(k + 1) * hid] for k in range(4))
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jnp.tanh(c) * jax.nn.sigmoid(o), c


def _lstm_bias_init(key, shape, dtype=None):
    hid = shape[0] // 4
    return jnp.zeros(shape, jnp.float32 if dtype is None else dtype).at[hid:2 * hid].set(1.0)


def run_core(core: str, u, h0, c0, xw):
    """Scan the recurrence of ``core`` over time-major projected inputs ``xw`` (T, B, G·H); returns (T, B, H)."""
    if core == "lstm":
        def step(hc, xt):
            hc = lstm_step(u, hc, xt)
            return hc, hc[0]
        carry = (h0, c0)
    else:
        fn = vanilla_step if core == "vanilla" else gru_step

        def step(h, xt):
            h = fn(u, h, xt)
            return h, h
        carry = h0
    _, hs = jax.lax.scan(step, carry, xw)
    return hs


def _block_orthogonal(blocks: int):
    """An initializer for (H, blocks·H) recurrent matrices: an independent orthogonal H×H block per gate."""

    def init(key, shape, dtype=jnp.float32):
        hid = shape[0]
        keys = jax.random.split(key, blocks)
        return jnp.concatenate([nn.initializers.orthogonal()(k, (hid, hid), dtype) for k in keys], axis=1)

    return init


def aggregate(hs, lengths, how: str):
    """Pool hidden states ``hs`` (B, T, H) over the real tokens of each row (``lengths`` (B,), ≥ 1).

    ``last``: the state after the last real token; ``mean`` / ``max``: over the first ``length`` states
    (padding excluded).
    """
    t = hs.shape[1]
    lengths = jnp.clip(lengths, 1, t)
    if how == "last":
        return jnp.take_along_axis(hs, (lengths - 1)[:, None, None], axis=1)[:, 0]
    mask = (jnp.arange(t)[None, :] < lengths[:, None])[..., None]
    if how == "mean":
        return jnp.sum(jnp.where(mask, hs, 0.0), axis=1) / lengths[:, None].astype(hs.dtype)
    if how == "max":
        return jnp.max(jnp.where(mask, hs, -jnp.inf), axis=1)
    raise ValueError(f"aggregation {how!r} is not one of ['last', 'mean', 'max']")


def core_config_space():
    """Schema of the ``core`` config field shared by the text families: ``{"kind", "hidden"}``."""
    from families.space import Int, Struct, Tagged

    return Tagged("kind", {k: Struct({"hidden": Int(32, 128)}) for k in CORES})


def sample_core(rng) -> dict:
    """Draw a core config: a kind uniformly, then its own width ``hidden`` ~ logint[32, 128]."""
    kind = rng.choice(list(CORES))
    return {"kind": kind, "hidden": rng.log_int(32, 128)}


def core_from_config(config: Mapping, trainable_init: bool) -> RNNCore:
    """An :class:`RNNCore` for a core config ``{"kind", "hidden"}``."""
    return _nets.RNNCore(core=config["kind"], hidden=config["hidden"], trainable_init=trainable_init)
