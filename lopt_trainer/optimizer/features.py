"""Feature helpers of the hierarchical learned optimizer (Metz et al. 2020).

Pure functions only: the loss trackers, the dynamic gradient clipper, the
per-tensor LSTM features, the step (time) embedding, and the *names and
sizes* of every input block, from which all feature counts are computed.

Input layouts (they fix the row order of the reference weight matrices):

* LSTM input: the named blocks of `lstm_input_layout`, concatenated in
  sorted-name order (as the reference does).
* MLP input: the named per-element blocks of `mlp_element_layout` in
  sorted-name order (each normalised by its second moment over the tensor),
  then the per-tensor constant blocks of `mlp_tensor_layout` in the fixed
  order step features, log #tensors - 1, log ||p||, log #elements,
  conditioning.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

# ---------------------------------------------------------------- layouts


def lstm_input_layout(config) -> list[tuple[str, int]]:
    """Names and widths of the per-tensor LSTM input blocks, in input order.

    Takes a `LOptConfig`; returns [(name, width), ...] sorted by name.
    """
    blocks = {
        "from_lstm": config.from_lstm_size,
        "from_mlp": config.from_mlp_size,
        "g_norm": 1,
        "is_scalar": 1,
        "mean_ms_mag": 1,
        "mean_ms_sign": 1,
        "mean_rms": 1,
        "mean_sign": 1,
        "mean_v_mag": 1,
        "mean_v_sign": 1,
        "norm_weight": 1,
        "train_loss_feat": 1,
        "valid_loss_feat": 1,
        "var_ms": 1,
        "var_rms": 1,
        "var_v": 1,
    }
    for j in range(config.max_rank):
        blocks[f"shape_{j}"] = 1
    return sorted(blocks.items())


def mlp_element_layout(config) -> list[tuple[str, int]]:
    """Names and widths of the per-element (normalised) MLP input blocks.

    Takes a `LOptConfig`; returns [(name, width), ...] sorted by name.
    `flat_v` is the parameter value and `rms` the second-moment accumulator
    (the reference's names).
    """
    k = len(config.decays)
    blocks = {
        "flat_g": 1,
        "flat_v": 1,
        "log_abs_v": 1,
        "m": k,
        "rms": k,
        "rms_scaled_g": k,
        "rsqrt": k,
    }
    return sorted(blocks.items())


def mlp_tensor_layout(config) -> list[tuple[str, int]]:
    """Names and widths of the per-tensor constant MLP input blocks, in order.

    Takes a `LOptConfig`; returns [(name, width), ...] in the reference's
    (unsorted) order.
    """
    return [
        ("step", len(config.step_timescales)),
        ("log_num_tensors", 1),
        ("log_norm", 1),
        ("log_num_elements", 1),
        ("conditioning", config.to_mlp_size),
    ]


def layout_size(layout) -> int:
    """Total width of a layout returned by one of the `*_layout` functions."""
    return sum(width for _, width in layout)


# ---------------------------------------------------------------- arithmetic

F32_MAX = float(jnp.finfo(jnp.float32).max)
"""The largest finite float32 (3.4e38): trackers saturate here instead of overflowing to inf."""

MAX_CLIP = 2.0 ** 63
"""Ceiling of the dynamic gradient clip (9.2e18): a clipped gradient's square, 2**126, stays a finite float32,
and so do the second-moment accumulators."""


def clip_log_abs(x):
    """`clip(log(1e-8 + |x|), -5, 5)` elementwise; returns an array like `x`."""
    return jnp.clip(jnp.log(1e-8 + jnp.abs(x)), -5.0, 5.0)


def one_minus_pow(decay, count):
    """Returns `1 - decay**count` (float32) without the cancellation that lets
    XLA fold `1 - d**0 + eps` into `0 + eps -> 0`; computed as
    `-expm1(count * log(decay))`, clamped at 0.
    """
    count = jnp.asarray(count, jnp.float32)
    return jnp.maximum(-jnp.expm1(count * jnp.log(jnp.float32(decay))), 0.0)


def step_features(iteration, timescales):
    """The time embedding `sin(t / (tau * pi))` for every tau.

    Takes the iteration (scalar) and a tuple of timescales; returns a float32
    vector of len(timescales).
    """
    taus = jnp.asarray(timescales, jnp.float32)
    return jnp.sin(jnp.asarray(iteration, jnp.float32) / (taus * jnp.float32(math.pi)))


# ---------------------------------------------------------------- loss trackers


class LossTracker(NamedTuple):
    """EMA tracker of a loss: mean, variance (both float32) and update count."""

    mean: jax.Array
    var: jax.Array
    count: jax.Array


def tracker_init() -> LossTracker:
    """Returns a fresh tracker: mean 0, var 0, count 0."""
    return LossTracker(jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32),
                       jnp.zeros((), jnp.int32))


def tracker_update(tracker: LossTracker, loss, decay: float) -> LossTracker:
    """Folds one loss into the tracker; returns the new tracker.

    `mean <- d*mean + (1-d)*loss`, `var <- d*var + (1-d)*(mean_new - loss)**2`,
    `count <- count + 1`.  A NaN or infinite `loss` is skipped (the tracker
    is returned unchanged), so one bad loss cannot poison every later step.
    A finite loss too large for these formulas in float32 (|loss| above
    about 1e19 makes the squared deviation overflow) saturates them at
    `F32_MAX` instead of inf: the variance then decays back (by `d` per
    step) like the exact one would, and the tracker stays finite.
    """
    loss = jnp.asarray(loss, jnp.float32)
    ok = jnp.isfinite(loss)
    safe = jnp.where(ok, loss, tracker.mean)
    mean = jnp.clip(decay * tracker.mean + (1.0 - decay) * safe, -F32_MAX, F32_MAX)
    var = jnp.minimum(decay * tracker.var + (1.0 - decay) * jnp.square(mean - safe), F32_MAX)
    return LossTracker(jnp.where(ok, mean, tracker.mean), jnp.where(ok, var, tracker.var),
                       tracker.count + ok.astype(tracker.count.dtype))


def tracker_correction(tracker: LossTracker, decay: float):
    """The bias correction `1 / (1 - d**count + 1e-8)`, finite at count 0."""
    return 1.0 / (one_minus_pow(decay, tracker.count) + 1e-8)


_SCALE = 2.0 ** -64
"""Exact (power-of-two) scale of `standardize_loss`'s overflow-free branch."""

_PLAIN_LIMIT = 2.0 ** 60
"""Below this |loss| and |mean| (and var below its square) the plain standardisation cannot overflow."""


def standardize_loss(train: LossTracker, decay: float, loss):
    """`clip((loss - c*mean) / sqrt(c*var + 1e-8), -5, 5)` with the train
    tracker's bias-corrected statistics; returns a float32 scalar.

    `loss` may be any float32 value but NaN (an infinite one gives +-5).
    Where the plain formula could overflow (|loss| or |mean| from 2**60
    (1.2e18) up, var from 2**120; inf/inf would be NaN and finite/inf a
    wrong 0), the same ratio is computed with every term scaled by 2**-64
    (exact), in which nothing overflows; below those limits the result is
    the plain formula's.
    """
    c = tracker_correction(train, decay)
    loss = jnp.asarray(loss, jnp.float32)
    z = (loss - c * train.mean) / jnp.sqrt(c * train.var + 1e-8)
    # Scaled, 1e-8 * 2**-128 would underflow to 0; 2**-100 (< 1e-30) keeps 0/0 out. This branch is used only
    # when |loss|, |mean| or var is huge, where either term is negligible.
    z_scaled = ((loss * _SCALE - c * (train.mean * _SCALE))
                / jnp.sqrt(c * ((train.var * _SCALE) * _SCALE) + 2.0 ** -100))  # 2**-128 is subnormal
    plain = ((jnp.abs(loss) < _PLAIN_LIMIT) & (jnp.abs(train.mean) < _PLAIN_LIMIT)
             & (train.var < _PLAIN_LIMIT * _PLAIN_LIMIT))
    return jnp.clip(jnp.where(plain, z, z_scaled), -5.0, 5.0)


def corrected_mean(tracker: LossTracker, decay: float):
    """Bias-corrected mean of a tracker (0 for a tracker never updated).

    Within the range of the losses fed; should rounding push it past
    float32's range (+-inf), `standardize_loss` still takes it.
    """
    return tracker.mean * tracker_correction(tracker, decay)


# ---------------------------------------------------------------- gradient clipping


class ClipState(NamedTuple):
    """Dynamic gradient clipper: step count `t` (int32) and running RMS `s`."""

    t: jax.Array
    s: jax.Array


def clip_init() -> ClipState:
    """Returns the clipper's initial state (t=1, s=0.01)."""
    return ClipState(jnp.ones((), jnp.int32), jnp.full((), 0.01, jnp.float32))


def clip_value(state: ClipState, config):
    """Current clip bound `min(mult * s / (1 - decay**t), MAX_CLIP)` (float32
    scalar; the ceiling keeps squared gradients finite, see `MAX_CLIP`)."""
    return jnp.minimum(config.clip_mult * state.s / one_minus_pow(config.clip_decay, state.t), MAX_CLIP)


def clip_advance(state: ClipState, rms, config) -> ClipState:
    """Advances the clipper given `rms = sqrt(1e-8 + mean over tensors of
    mean(g_clipped**2))` (computed by the caller without overflow)."""
    s = config.clip_decay * state.s + (1.0 - config.clip_decay) * rms
    return ClipState(state.t + 1, s)


# ---------------------------------------------------------------- per-tensor features


def shape_features(shape, max_rank: int) -> list[float]:
    """`log(dim) - 1` for the first `max_rank` dims (missing dims count as 1).

    Raises ValueError for a shape of rank > `max_rank` (`hierarchical.check_params` names the tensor first).
    """
    if len(shape) > max_rank:
        raise ValueError(f"tensor of shape {shape} has rank {len(shape)} > max_rank={max_rank}")
    dims = tuple(shape) + (1,) * (max_rank - len(shape))
    return [math.log(d) - 1.0 if d > 0 else -1.0 for d in dims]


def mean_var(total, total_sq, count):
    """Mean and (population) variance from a sum and a sum of squares.

    A count of 0 gives mean 0 and variance 0 (not 0/0).
    """
    count = jnp.maximum(count, 1)
    mean = total / count
    return mean, jnp.maximum(total_sq / count - jnp.square(mean), 0.0)
