"""The hierarchical learned optimizer of Metz et al. 2020 (arXiv 2009.11243).

A per-tensor LSTM (weights shared across tensors) conditions a per-parameter
MLP (weights shared across all scalars of all tensors); messages flow both
ways.  The math follows the reference implementation (google/learned_optimization,
`learned_optimizers/rnn_mlp_lopt.py`); the input
orders are those of `features.py` (the reference's sorted-name orders), so a
θ imported with `reference_io.load_reference_npz` gives the reference's
updates.

Public pieces:

* `LOptConfig` - frozen dataclass of sizes, decays and constants.
* `init(key, config) -> theta` - meta-parameters, a nested dict of arrays
  laid out exactly like the reference (rows in reference order).
* `init_state(theta, params, config) -> LOptState` - inner state (a pytree);
  checks θ (`check_theta`) and the parameter shapes (`check_params`) first.
* `update(theta, grads, state, params, loss, config) -> (updates, state)`.
* `observe_validation(state, valid_loss, config) -> state`.
* `state_type(config)` - the `LOptState` class of a config: a state knows the
  config it was made for (`type(state).config`), so code that holds only
  the state (an optax wrapper's, see `optax_api.observe_validation`) can
  feed it.

How the per-parameter MLP is evaluated (same math, fewer FLOPs than the
reference, which evaluates the full 54 -> 32 -> 32 -> 18 MLP per scalar):

* the 31 MLP inputs constant within a tensor are folded into a per-tensor
  bias of the first layer;
* the second-moment normalisation of the 23 per-element columns is folded
  into per-tensor row scales of the first layer's weights;
* the 16 message outputs are only ever averaged over the tensor, so they are
  computed as `mean(h2) @ W3[:, 2:] + b3[2:]`; per scalar only the direction
  and magnitude outputs are computed.

Deliberate differences from the reference:

* the validation tracker is fed (see `observe_validation`); by default a
  validation call does NOT advance the iteration counter (see
  `LOptConfig.valid_advances_iteration`), so the step features count
  training updates only;
* bias corrections `1/(1 - d**t + 1e-8)` are computed via `expm1`, so t = 0
  cannot become 1/0 under XLA simplification;
* every per-tensor statistic (the LSTM's means, variances and norms, the
  MLP columns' second moments, the clipper's mean square) comes from one
  pair of row sums over the element columns, `sum(x)` and `sum(x**2)`, so
  variances are `E[x**2] - E[x]**2` (clamped at 0) instead of the two-pass
  `jnp.var`.  Cancellation only matters when |mean| is far above the
  standard deviation; the LSTM sees these variances through
  `clip(log(1e-8 + var), -5, 5)`, which is -5 for every var below 6.7e-3,
  so the feature differs only for tensors with |mean| above about 80.
* nothing overflows for finite inputs: where a plain row sum
  of a tensor's columns is not finite (e.g. parameters of 1e20, or a
  1000 x 1000 weight at 1e17), the rows are summed again scaled by a power
  of two near their largest magnitude (`_row_moments`), and every
  statistic that was not finite is formed from the scaled sums instead, so
  `E[x**2] - E[x]**2` is never inf - inf and `log ||p||` never log(inf).
  The plain formulas are computed as before and used wherever they are
  finite; on ordinary inputs the results are those of before up to
  float32 rounding (the extra ops change how XLA fuses and contracts the
  surrounding arithmetic, so some values differ in the last bit).  A statistic
  that is itself beyond float32 (a variance above 3.4e38) is inf only
  where it goes through `clip(log(.), -5, 5)`, which gives 5.
  Gradients are clipped to at most `features.MAX_CLIP` (9.2e18), so the
  second-moment accumulators stay finite; the loss trackers saturate at
  the largest float32 (see `features.tracker_update`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lopt_trainer.optimizer import features as F


@dataclasses.dataclass(frozen=True)
class LOptConfig:
    """Settings of the hierarchical learned optimizer (defaults = the paper's).

    `valid_every` is the number of inner training steps between two
    validation losses fed through `observe_validation`; the optimizer itself
    does not use it, training loops read it (default 10).
    """

    lstm_hidden: int = 64
    mlp_hidden: tuple[int, ...] = (32, 32)
    from_mlp_size: int = 16
    from_lstm_size: int = 18
    to_mlp_size: int = 17
    decays: tuple[float, ...] = (0.5, 0.9, 0.99, 0.999, 0.9999)
    step_timescales: tuple[float, ...] = (1, 3, 10, 30, 100, 300, 1e3, 3e3, 1e4, 3e4, 1e5)
    max_rank: int = 4
    step_mult: float = 0.001
    exp_mult: float = 0.001
    train_loss_decay: float = 0.9
    valid_loss_decay: float = 0.95
    clip_decay: float = 0.99
    clip_mult: float = 10.0
    valid_every: int = 10
    valid_advances_iteration: bool = False

    @property
    def lstm_input_size(self) -> int:
        """Width of the LSTM input (52 by default)."""
        return F.layout_size(F.lstm_input_layout(self))

    @property
    def mlp_element_size(self) -> int:
        """Number of normalised per-element MLP inputs (23 by default)."""
        return F.layout_size(F.mlp_element_layout(self))

    @property
    def mlp_tensor_size(self) -> int:
        """Number of per-tensor constant MLP inputs (31 by default)."""
        return F.layout_size(F.mlp_tensor_layout(self))

    @property
    def mlp_input_size(self) -> int:
        """Width of the full per-parameter MLP input (54 by default)."""
        return self.mlp_element_size + self.mlp_tensor_size

    @property
    def mlp_output_size(self) -> int:
        """Outputs per parameter: direction, magnitude, message (18)."""
        return 2 + self.from_mlp_size


DEFAULT_CONFIG = LOptConfig()


# ---------------------------------------------------------------- meta-parameters


def _linear_init(key, fan_in: int, fan_out: int):
    # Haiku's default: truncated normal (±2σ) with std 1/sqrt(fan_in), zero bias.
    std = 1.0 / math.sqrt(fan_in) / 0.87962566103423978
    w = std * jax.random.truncated_normal(key, -2.0, 2.0, (fan_in, fan_out), jnp.float32)
    return w, jnp.zeros((fan_out,), jnp.float32)


def init(key, config: LOptConfig = DEFAULT_CONFIG) -> dict:
    """Random meta-parameters θ.

    Takes a PRNG key and a config; returns a nested dict of float32 arrays:
    `initial_from_lstm`, `initial_from_mlp`, `lstm/{init_hidden, init_cell,
    w, b}`, `to_mlp/{w, b}`, `to_lstm/{w, b}`, `mlp/{w0, b0, w1, b1, ...}`.
    Linear layers use Haiku's default initialisation; initial messages and
    the initial LSTM state are zeros.
    """
    k_lstm, k_ff, k_in, k_mlp = jax.random.split(key, 4)
    h = config.lstm_hidden
    lstm_w, lstm_b = _linear_init(k_lstm, config.lstm_input_size + h, 4 * h)
    ff_w, ff_b = _linear_init(k_ff, h, config.to_mlp_size)
    in_w, in_b = _linear_init(k_in, h, config.from_lstm_size)
    sizes = (config.mlp_input_size, *config.mlp_hidden, config.mlp_output_size)
    mlp = {}
    for i, key_i in enumerate(jax.random.split(k_mlp, len(sizes) - 1)):
        mlp[f"w{i}"], mlp[f"b{i}"] = _linear_init(key_i, sizes[i], sizes[i + 1])
    return {
        "initial_from_lstm": jnp.zeros((config.from_lstm_size,), jnp.float32),
        "initial_from_mlp": jnp.zeros((config.from_mlp_size,), jnp.float32),
        "lstm": {"init_hidden": jnp.zeros((1, h), jnp.float32),
                 "init_cell": jnp.zeros((1, h), jnp.float32),
                 "w": lstm_w, "b": lstm_b},
        "to_mlp": {"w": ff_w, "b": ff_b},
        "to_lstm": {"w": in_w, "b": in_b},
        "mlp": mlp,
    }


def init_handset(key, config: LOptConfig = DEFAULT_CONFIG, *, scale: float = 1.0, noise: float = 0.05,
                 decay: float = 0.9) -> dict:
    """Meta-parameters θ whose untrained optimizer already descends: a per-tensor-normalised momentum/RMS rule.

    The per-parameter MLP routes its normalised ``m/sqrt(v)`` input column (the ``rms_scaled_g`` column of
    ``decay``) to the direction output through a ReLU pair, ``x = relu(x) - relu(-x)``, in hidden units 0 and 1
    of every layer; the magnitude output is 0. With ``noise = 0`` the update of every parameter is therefore
    exactly ``-scale * step_mult * x / sqrt(1e-5 + mean(x**2))`` with ``x = m_d / sqrt(v_d + 1e-6)`` (the mean over
    the tensor): a momentum step of RMS ``scale * step_mult`` per tensor (about Adam at lr ``scale * 1e-3``).
    Everything else is the random θ of :func:`init` times ``noise``, so every input has a path to the outputs
    and meta-training gets gradient signal through all of θ. Raises ``ValueError`` for a config whose MLP has
    fewer than 2 units per hidden layer or whose decays do not contain ``decay``.
    """
    if not config.mlp_hidden or min(config.mlp_hidden) < 2:
        raise ValueError(f"init_handset needs >= 2 units per MLP hidden layer, got {config.mlp_hidden}")
    if decay not in config.decays:
        raise ValueError(f"decay {decay} is not one of the optimizer's decays {config.decays}")
    theta = jax.tree_util.tree_map(lambda x: noise * x, init(key, config))
    row = _element_blocks(config)["rms_scaled_g"][0] + config.decays.index(decay)
    mlp = dict(theta["mlp"])
    n_layers = len(config.mlp_hidden) + 1
    for layer in range(n_layers):
        w, b = mlp[f"w{layer}"], mlp[f"b{layer}"]
        if layer == 0:  # hidden units 0 and 1: relu(x) and relu(-x)
            w = w.at[:, :2].set(0.0).at[row, 0].set(1.0).at[row, 1].set(-1.0)
        elif layer < n_layers - 1:  # later hidden layers: units 0 and 1 carry the pair on
            w = w.at[:, :2].set(0.0).at[0, 0].set(1.0).at[1, 1].set(1.0)
        else:  # output: direction = scale * (relu(x) - relu(-x)) + noise terms, magnitude = 0
            w = w.at[:, 1].set(0.0).at[0, 0].set(scale).at[1, 0].set(-scale)
        mlp[f"w{layer}"], mlp[f"b{layer}"] = w, b.at[:2].set(0.0)
    return {**theta, "mlp": mlp}


# ---------------------------------------------------------------- inner state


class LOptState(NamedTuple):
    """Inner state of one optimisation problem (a pytree).

    `m`, `v`: trees like params, each leaf of shape `(K,) + p.shape` for the
    K decays (decay-major, unlike the reference's `p.shape + (K,)`: every
    elementwise pass then runs along contiguous parameter entries); `iteration`: int32 count of training updates (plus validation
    calls when `valid_advances_iteration`); `lstm_hidden`, `lstm_cell`:
    (T, H) for the T tensors; `from_mlp`: (T, from_mlp_size); `from_lstm`:
    (from_lstm_size,); `train_loss`, `valid_loss`: `features.LossTracker`;
    `clip`: `features.ClipState`; `nonfinite_losses`: int32 count of the
    training and validation losses that were NaN or infinite (skipped by
    the trackers, see `features.tracker_update`).

    Zero-element leaves of `params` take no part in anything shared across
    tensors: T counts only the leaves with at least one element.

    `config` (a class attribute, not a field) is the `LOptConfig` the state
    was made for: `LOptState` itself for the default config, one subclass
    per other config (`state_type`), so the config travels with the state
    through any pytree code (jit, scan, optax wrappers, flax serialization,
    pickle) without adding a leaf.
    """

    m: Any
    v: Any
    iteration: jax.Array
    lstm_hidden: jax.Array
    lstm_cell: jax.Array
    from_mlp: jax.Array
    from_lstm: jax.Array
    train_loss: F.LossTracker
    valid_loss: F.LossTracker
    clip: F.ClipState
    nonfinite_losses: jax.Array

    config = DEFAULT_CONFIG

    def __reduce__(self):
        # Pickle (Ray, copy) by config, so that an unpickled state of a non-default config gets this process's
        # class for that config (one per config: tree structures compare equal), not a copy of the class.
        return _rebuild_state, (self.config, tuple(self))


@functools.lru_cache(maxsize=None)
def state_type(config: LOptConfig) -> type:
    """The `LOptState` class whose states were made for `config`.

    `LOptState` for configs equal to `DEFAULT_CONFIG`, else a subclass (same
    fields, same name) whose `config` attribute is `config`; equal configs
    give the same class.
    """
    if config == DEFAULT_CONFIG:
        return LOptState
    return type("LOptState", (LOptState,), {
        "__slots__": (), "config": config, "__module__": __name__, "__qualname__": "LOptState",
        "__doc__": f"`LOptState` of {config!r}."})


def _rebuild_state(config, fields):
    """The state of `config` holding `fields` (see `LOptState.__reduce__`)."""
    return state_type(config)(*fields)


@functools.lru_cache(maxsize=None)
def _theta_shapes(config: LOptConfig) -> dict:
    """`{path: shape}` of the θ `init` makes for `config` (computed abstractly, once per config)."""
    abstract = jax.eval_shape(functools.partial(init, config=config),
                              jax.ShapeDtypeStruct((2,), jnp.uint32))
    return {jax.tree_util.keystr(path): tuple(x.shape)
            for path, x in jax.tree_util.tree_flatten_with_path(abstract)[0]}


def _theta_sizes(theta) -> dict:
    """The config sizes that θ's shapes reveal, as far as they can be read (for error messages)."""
    sizes = {}
    try:
        sizes["lstm_hidden"] = int(jnp.shape(theta["lstm"]["init_hidden"])[-1])
        sizes["from_mlp_size"] = int(jnp.shape(theta["initial_from_mlp"])[-1])
        sizes["from_lstm_size"] = int(jnp.shape(theta["initial_from_lstm"])[-1])
        sizes["to_mlp_size"] = int(jnp.shape(theta["to_mlp"]["b"])[-1])
        n_mlp = sum(1 for k in theta["mlp"] if k.startswith("b"))
        sizes["mlp_hidden"] = tuple(int(jnp.shape(theta["mlp"][f"b{i}"])[-1]) for i in range(n_mlp - 1))
    except (KeyError, IndexError, TypeError):
        pass
    return sizes


def check_theta(theta, config: LOptConfig = DEFAULT_CONFIG) -> None:
    """Checks that θ has the arrays and shapes `config` needs (`init(key, config)`'s).

    Raises ValueError naming the first array (`theta['lstm']['w']`, in tree
    order) that is missing, unexpected or of another shape, and the sizes
    in which θ's config and `config` differ where θ's shapes tell them
    (e.g. `lstm_hidden: θ 32, config 64`).  Shapes only: the values (and
    whether they are finite) are not looked at, so tracers pass.
    """
    if not isinstance(theta, dict):
        raise ValueError(f"theta: expected the dict of arrays made by hierarchical.init or a θ loader, got "
                         f"{type(theta).__name__}")
    want = _theta_shapes(config)
    have = {jax.tree_util.keystr(path): tuple(jnp.shape(x))
            for path, x in jax.tree_util.tree_flatten_with_path(theta)[0]}
    problem = None
    for name, shape in want.items():
        if name not in have:
            problem = f"theta{name} is missing"
        elif have[name] != shape:
            problem = f"theta{name} has shape {have[name]}, the config needs {shape}"
        if problem:
            break
    else:
        extra = [name for name in have if name not in want]
        if extra:
            problem = f"theta{extra[0]} is not an array of this optimizer"
    if problem is None:
        return
    mine = {name: getattr(config, name) for name in ("lstm_hidden", "from_mlp_size", "from_lstm_size",
                                                      "to_mlp_size", "mlp_hidden")}
    differ = [f"{name}: θ {value}, config {mine[name]}" for name, value in _theta_sizes(theta).items()
              if value != mine[name]]
    hint = f" ({'; '.join(differ)})" if differ else ""
    raise ValueError(f"{problem}: θ was made for another LOptConfig{hint}; pass the config θ was made with")


def check_params(params, config: LOptConfig = DEFAULT_CONFIG) -> None:
    """Checks that every parameter tensor can be optimized with `config`.

    Raises ValueError naming the first tensor (tree order, as
    `params['dense']['kernel']`) of rank above `config.max_rank` that has at
    least one element (zero-element leaves take no part, whatever their
    rank).  `max_rank` is the number of shape features of the LSTM's input,
    fixed by θ, so the way out is to reshape the tensor, or to give it to
    another optimizer (`optax.partition`).
    """
    for path, p in jax.tree_util.tree_flatten_with_path(params)[0]:
        shape = tuple(jnp.shape(p))
        if len(shape) > config.max_rank and math.prod(shape) > 0:
            raise ValueError(
                f"params{jax.tree_util.keystr(path)}: a tensor of shape {shape} has rank {len(shape)}; the "
                f"learned optimizer takes tensors of rank <= {config.max_rank} (LOptConfig.max_rank, fixed by "
                f"θ: one LSTM input per dimension). Reshape it to rank {config.max_rank} or less (e.g. merge "
                "leading dimensions), or give it to another optimizer (optax.partition)")


def init_state(theta: dict, params, config: LOptConfig = DEFAULT_CONFIG) -> LOptState:
    """Fresh inner state for `params` (any pytree of arrays).

    Takes θ, the parameter pytree and the config; returns a `state_type(config)`
    (an `LOptState`) with zero accumulators and θ's learned initial LSTM
    state and messages.  Raises ValueError when θ does not fit `config`
    (`check_theta`) or a tensor's rank exceeds `config.max_rank`
    (`check_params`), naming the array or tensor by its path.
    """
    check_theta(theta, config)
    check_params(params, config)
    k = len(config.decays)
    t = len(_live_indices(jax.tree_util.tree_leaves(params)))
    acc = jax.tree_util.tree_map(lambda p: jnp.zeros((k,) + jnp.shape(p), jnp.float32), params)
    return state_type(config)(
        m=acc,
        v=jax.tree_util.tree_map(jnp.zeros_like, acc),
        iteration=jnp.zeros((), jnp.int32),
        # copies, never θ's own buffers: a training loop that donates the state must not delete θ
        lstm_hidden=jnp.array(jnp.broadcast_to(theta["lstm"]["init_hidden"], (t, config.lstm_hidden)), copy=True),
        lstm_cell=jnp.array(jnp.broadcast_to(theta["lstm"]["init_cell"], (t, config.lstm_hidden)), copy=True),
        from_mlp=jnp.array(jnp.broadcast_to(theta["initial_from_mlp"], (t, config.from_mlp_size)), copy=True),
        from_lstm=jnp.array(theta["initial_from_lstm"], jnp.float32, copy=True),
        train_loss=F.tracker_init(),
        valid_loss=F.tracker_init(),
        clip=F.clip_init(),
        nonfinite_losses=jnp.zeros((), jnp.int32),
    )


def observe_validation(state: LOptState, valid_loss, config: LOptConfig | None = None) -> LOptState:
    """Feeds one validation loss; returns the new state.

    Only `state.valid_loss` changes (and `state.iteration` when
    `config.valid_advances_iteration`; the reference advances it, we do not
    by default so that the step features count training updates whatever
    the validation cadence).  The reference never calls this during
    training; we do every `config.valid_every` steps.  `config` defaults to
    the one the state was made for (`type(state).config`).  `state` is one
    `LOptState`; for the state of an optax wrapper use
    `optax_api.observe_validation`.
    """
    config = type(state).config if config is None else config
    valid_loss = scalar_loss(valid_loss, "valid_loss")
    state = state._replace(
        valid_loss=F.tracker_update(state.valid_loss, valid_loss, config.valid_loss_decay),
        nonfinite_losses=_count_nonfinite(state.nonfinite_losses, valid_loss))
    if config.valid_advances_iteration:
        state = state._replace(iteration=state.iteration + 1)
    return state


# ---------------------------------------------------------------- inputs


def scalar_loss(loss, name: str = "loss"):
    """`loss` as a float32 scalar array.

    Raises ValueError naming the argument `name` when `loss` is not a scalar
    (e.g. a per-example loss vector of shape (8,)): the optimizer folds it
    into persistent state, where a vector would broadcast silently.
    """
    shape = jnp.shape(loss)
    if shape != ():
        raise ValueError(f"{name}: the learned optimizer takes a scalar loss, got an array of shape "
                         f"{shape}; reduce it first (e.g. loss.mean())")
    return jnp.asarray(loss, jnp.float32)


def _count_nonfinite(count, loss):
    """`count + 1` when `loss` is NaN or infinite, else `count`."""
    return count + jnp.logical_not(jnp.isfinite(loss)).astype(jnp.int32)


def _live_indices(leaves) -> list[int]:
    """Indices of the leaves with at least one element (decided at trace time:
    shapes are static, so a zero-element leaf is dropped from the traced
    program instead of being masked at run time)."""
    return [i for i, p in enumerate(leaves) if math.prod(jnp.shape(p)) > 0]


# ---------------------------------------------------------------- one step


def lstm_cell(w, b, x, h, c):
    """One Haiku-convention LSTM step on a batch.

    Takes weights (in+H, 4H), bias (4H,), inputs (B, in), hidden and cell
    (B, H); returns (h', c').  `z = [x, h] @ w + b` split into (i, g, f, o),
    `c' = σ(f + 1) c + σ(i) tanh(g)`, `h' = σ(o) tanh(c')`.
    """
    z = jnp.concatenate([x, h], axis=-1) @ w + b
    i, g, f, o = jnp.split(z, 4, axis=-1)
    c_new = jax.nn.sigmoid(f + 1.0) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h_new = jax.nn.sigmoid(o) * jnp.tanh(c_new)
    return h_new, c_new


def _element_blocks(config) -> dict[str, tuple[int, int]]:
    """Row ranges [start, stop) of each named block of the element columns."""
    ranges, start = {}, 0
    for name, width in F.mlp_element_layout(config):
        ranges[name] = (start, start + width)
        start += width
    return ranges


class RowMoments(NamedTuple):
    """Moments of the rows of x (C, N), plain and (where those overflow) scaled.

    `mean`, `second` (C,): the plain `sum(x_row) / N` and `sum(x_row**2) / N`
    (the reduction the optimizer has always used; inf or NaN where a sum
    exceeds float32).  `scale`, `scaled_mean`, `scaled_second` (C,): the
    same moments of `x_row / scale` for a power of two `scale` with
    `scale <= max|x_row| < 2 * scale` (clamped to [2**-126, 2**126]), so
    `scaled_second` is at most 4 (16 beyond 2**127) and nothing overflows:
    the moments are `scale * scaled_mean` and `scale**2 * scaled_second`.
    """

    mean: jax.Array
    second: jax.Array
    scale: jax.Array
    scaled_mean: jax.Array
    scaled_second: jax.Array


def _pow2_floor(a):
    """The power of two `s` with `s <= a < 2s` for positive normal float32 `a` (exponent bits only),
    clamped to [2**-126, 2**126] (so 1/s is normal too, and 0 gives 2**-126)."""
    bits = jax.lax.bitcast_convert_type(a, jnp.int32) & jnp.int32(0x7F800000)
    bits = jnp.clip(bits, jnp.int32(1 << 23), jnp.int32(253 << 23))
    return jax.lax.bitcast_convert_type(bits, jnp.float32)


def _scaled_moments(x):
    """`(scale, mean(x / scale), mean((x / scale)**2))` per row of finite x (C, N), none overflowing; see
    `RowMoments`."""
    n = x.shape[1]
    scale = _pow2_floor(jnp.max(jnp.abs(x), axis=1))
    xs = x * (1.0 / scale)[:, None]  # exact: a power of two
    return scale, jnp.sum(xs, axis=1) / n, jnp.sum(xs * xs, axis=1) / n


def _row_moments(x) -> RowMoments:
    """`RowMoments` of x (C, N) (finite).

    The plain row sums are computed as they always were, and every statistic
    made from them is used where it is finite, so ordinary inputs take the
    old formulas; the scaled sums (one more pass for the row maxima, one for
    the sums) serve only where a plain one is not finite.
    """
    n = x.shape[1]
    mean, second = jnp.sum(x, axis=1) / n, jnp.sum(x * x, axis=1) / n
    return RowMoments(mean, second, *_scaled_moments(x))


def _column_scale(mo: RowMoments):
    """The MLP columns' normalisers `rsqrt(1e-5 + E[x**2])` (C,): the plain formula's where the plain second
    moment is finite, else the same from the scaled one, `rsqrt(1e-5 / s**2 + q) / s`."""
    plain = jax.lax.rsqrt(1e-5 + mo.second)
    s = mo.scale
    return jnp.where(jnp.isfinite(plain) & jnp.isfinite(mo.second),
                     plain, jax.lax.rsqrt(1e-5 / s / s + mo.scaled_second) / s)


def _times_square(s, x):
    """`s**2 * x` as `s * (s * x)`: inf (not NaN) beyond float32 for finite x >= 0, and 0 for x = 0."""
    return s * (s * x)


def _pooled_scaled(scales, means, seconds):
    """Mean over rows (R,) of scaled moments, brought to their largest scale `s`: returns
    `(s, mean, second)`, the pooled moments being `s * mean` and `s**2 * second` (never overflowing)."""
    s = jnp.max(scales)
    ratio = scales / s  # a power of two <= 1
    return s, jnp.mean(ratio * means), jnp.mean(ratio * (ratio * seconds))


def _grad_rms(moments: list[RowMoments], g_row: int):
    """`sqrt(1e-8 + mean over tensors of mean(g**2))` (the clipper's input), the plain formula's bits
    where it is finite, else from the scaled moments."""
    plain = jnp.sqrt(1e-8 + sum(mo.second[g_row] for mo in moments) / len(moments))
    s, _, q = _pooled_scaled(*(jnp.stack([getattr(mo, f)[g_row] for mo in moments])
                               for f in ("scale", "scaled_mean", "scaled_second")))
    return jnp.where(jnp.isfinite(plain), plain, s * jnp.sqrt(1e-8 / s / s + q))


def _tensor_stats(mo: RowMoments, n, config):
    """Per-tensor LSTM statistics from the element columns' row moments.

    Takes the `RowMoments` (C,) of one tensor's element columns and its
    element count n; returns the named LSTM features plus `_log_norm`
    (log(||p|| + 1e-8), an MLP input).  A block of rows (the K decays of m
    or v) pools its rows: mean of means, mean of second moments.  Each
    statistic is the plain formula's where that is finite; else it comes
    from the scaled moments, where a variance or norm beyond float32 is inf
    only inside `clip_log_abs` (giving 5): finite for every finite input.
    """
    blocks = _element_blocks(config)

    def pooled(name):
        a, b = blocks[name]
        mu = jnp.mean(mo.mean[a:b])
        var = jnp.maximum(jnp.mean(mo.second[a:b]) - mu * mu, 0.0)
        s, mu_s, sec_s = _pooled_scaled(mo.scale[a:b], mo.scaled_mean[a:b], mo.scaled_second[a:b])
        return (jnp.where(jnp.isfinite(mu), mu, s * mu_s),
                jnp.where(jnp.isfinite(var), var, _times_square(s, jnp.maximum(sec_s - mu_s * mu_s, 0.0))))

    m_mean, m_var = pooled("m")
    v_mean, v_var = pooled("rms")
    p_mean, p_var = pooled("flat_v")
    p_row, g_row = blocks["flat_v"][0], blocks["flat_g"][0]
    p_norm = jnp.sqrt(n * mo.second[p_row])  # inf (not NaN) when the plain sum overflowed
    g_norm = jnp.sqrt(n * mo.second[g_row])
    # Beyond float32, log ||p|| = log(s) + log(n q) / 2 (the 1e-8 is then far below its resolution).
    log_norm = jnp.where(jnp.isfinite(p_norm), jnp.log(p_norm + 1e-8),
                         jnp.log(mo.scale[p_row]) + 0.5 * jnp.log(n * mo.scaled_second[p_row]))

    return {
        "mean_ms_mag": F.clip_log_abs(m_mean), "mean_ms_sign": jnp.sign(m_mean),
        "var_ms": F.clip_log_abs(m_var),
        # The reference's names: `rms` is the second-moment accumulator, `v`
        # the parameter value.
        "mean_rms": F.clip_log_abs(v_mean), "mean_sign": jnp.sign(v_mean),
        "var_rms": F.clip_log_abs(v_var),
        "mean_v_mag": F.clip_log_abs(p_mean), "mean_v_sign": jnp.sign(p_mean),
        "var_v": F.clip_log_abs(p_var),
        "norm_weight": F.clip_log_abs(p_norm),
        "g_norm": F.clip_log_abs(g_norm),
        "_log_norm": log_norm,
    }


def _element_columns(p, g, m, v):
    """The per-element MLP inputs as rows (23, N), sorted-name order, unnormalised."""
    rsqrt = jax.lax.rsqrt(v + 1e-6)
    cols = {
        "flat_g": g[None],
        "flat_v": p[None],
        "log_abs_v": jnp.log(jnp.abs(p) + 1e-8)[None],
        "m": m,
        "rms": v,
        "rms_scaled_g": m * rsqrt,
        "rsqrt": rsqrt,
    }
    return jnp.concatenate([cols[name] for name in sorted(cols)], axis=0)


def _per_element_mlp(x, w0, b0, hidden_w, hidden_b, w_out, b_out):
    """MLP over the columns of x (C, N), ReLU after every hidden layer.

    Weights are given input-major ((in, out), as stored); the work is done
    feature-major, (out, in) @ (in, N), so every elementwise pass runs along
    the contiguous N axis.  The transposed weights are materialised behind an
    optimisation barrier: otherwise XLA folds the transpose into the dot, and
    the CPU backend's kernel for a transposed left operand is 1.3-1.7x slower
    on these shapes (`benchmarks/bench_lopt_step.py`).  Returns (outputs
    (out, N), mean over the N columns of the last hidden layer (H,)).
    """
    def transposed(w):
        return jax.lax.optimization_barrier(w.T)

    h = jax.nn.relu(transposed(w0) @ x + b0[:, None])
    for w, b in zip(hidden_w, hidden_b):
        h = jax.nn.relu(transposed(w) @ h + b[:, None])
    return transposed(w_out) @ h + b_out[:, None], jnp.mean(h, axis=1)


def update(theta: dict, grads, state: LOptState, params, loss,
           config: LOptConfig | None = None):
    """One optimizer step.

    Takes θ, the gradient pytree, the inner state, the current parameters
    (same structure as grads) and the scalar training loss; returns
    `(updates, new_state)` where `updates` is a pytree like params
    (`params + updates` is the new parameters; dtype of each parameter kept).

    Degenerate inputs: a leaf with zero elements gets an empty (zero)
    update and takes no part in the statistics shared across tensors (the
    tensor count, the clipper's mean square, the LSTM batch, messages); an
    empty tree gets empty updates (only the iteration and the train-loss
    tracker advance).  A NaN or infinite `loss` is skipped by the train-loss
    tracker, counted in `nonfinite_losses`, and its loss feature is 0, so
    the step stays finite.  A non-scalar `loss` raises ValueError, and so
    does a tensor of rank above `config.max_rank` (`check_params`).  Finite
    inputs of any magnitude give finite updates and state (see the module
    docstring).  `config` defaults to the state's (`type(state).config`);
    the new state is of the same class as `state`.
    """
    config = type(state).config if config is None else config
    loss = scalar_loss(loss, "loss")
    check_params(params, config)
    all_p, treedef = jax.tree_util.tree_flatten(params)
    all_g = treedef.flatten_up_to(grads)
    all_m = treedef.flatten_up_to(state.m)
    all_v = treedef.flatten_up_to(state.v)
    live = _live_indices(all_p)
    p_leaves = [all_p[i] for i in live]
    g_leaves = [all_g[i] for i in live]
    m_leaves = [all_m[i] for i in live]
    v_leaves = [all_v[i] for i in live]
    n_tensors = len(p_leaves)
    decays = jnp.asarray(config.decays, jnp.float32)

    # 1. Loss features (train tracker updated first, as in the reference;
    # a non-finite loss is skipped by the tracker and its feature is 0).
    train = F.tracker_update(state.train_loss, loss, config.train_loss_decay)
    nonfinite = _count_nonfinite(state.nonfinite_losses, loss)
    train_feat = jnp.where(jnp.isfinite(loss),
                           F.standardize_loss(train, config.train_loss_decay, loss), 0.0)
    valid_feat = F.standardize_loss(
        train, config.train_loss_decay, F.corrected_mean(state.valid_loss, config.valid_loss_decay))
    if not live:
        return treedef.unflatten([jnp.zeros(jnp.shape(p), jnp.result_type(p)) for p in all_p]), \
            state._replace(iteration=state.iteration + 1, train_loss=train, nonfinite_losses=nonfinite)

    # 2. Dynamic gradient clipping.
    bound = F.clip_value(state.clip, config)
    ps = [jnp.asarray(p, jnp.float32).reshape(-1) for p in p_leaves]
    gs = [jnp.clip(jnp.asarray(g, jnp.float32).reshape(-1), -bound, bound) for g in g_leaves]

    # 3. Accumulators.
    k = len(config.decays)
    d_col = decays[:, None]
    ms = [d_col * m.reshape(k, -1) + (1.0 - d_col) * g[None] for m, g in zip(m_leaves, gs)]
    vs = [d_col * v.reshape(k, -1) + (1.0 - d_col) * jnp.square(g)[None]
          for v, g in zip(v_leaves, gs)]

    # 4. The per-element MLP columns and their row moments, from which come
    # the per-tensor LSTM inputs, the columns' normalisers and the clipper's
    # mean square (one pass over the columns for all of them).
    columns = [_element_columns(p, g, m, v) for p, g, m, v in zip(ps, gs, ms, vs)]
    moments = [_row_moments(x) for x in columns]
    stats = [_tensor_stats(mo, x.shape[1], config) for x, mo in zip(columns, moments)]
    clip = F.clip_advance(state.clip, _grad_rms(moments, _element_blocks(config)["flat_g"][0]), config)
    blocks = {name: jnp.stack([s[name] for s in stats])[:, None]
              for name in stats[0] if not name.startswith("_")}
    blocks["is_scalar"] = jnp.asarray(
        [[1.0 if jnp.ndim(p) == 0 else -1.0] for p in p_leaves], jnp.float32)
    shapes = jnp.asarray([F.shape_features(jnp.shape(p), config.max_rank) for p in p_leaves],
                         jnp.float32)
    for j in range(config.max_rank):
        blocks[f"shape_{j}"] = shapes[:, j:j + 1]
    blocks["train_loss_feat"] = jnp.broadcast_to(train_feat, (n_tensors, 1))
    blocks["valid_loss_feat"] = jnp.broadcast_to(valid_feat, (n_tensors, 1))
    blocks["from_mlp"] = state.from_mlp
    blocks["from_lstm"] = jnp.broadcast_to(state.from_lstm, (n_tensors, config.from_lstm_size))
    lstm_in = jnp.concatenate([blocks[name] for name, _ in F.lstm_input_layout(config)], axis=1)

    # 5. LSTM and its heads.
    hidden, cell = lstm_cell(theta["lstm"]["w"], theta["lstm"]["b"], lstm_in,
                             state.lstm_hidden, state.lstm_cell)
    conditioning = hidden @ theta["to_mlp"]["w"] + theta["to_mlp"]["b"]
    from_lstm = jnp.mean(hidden @ theta["to_lstm"]["w"] + theta["to_lstm"]["b"], axis=0)

    # 6. Per-tensor constant MLP inputs, folded into the first layer's bias.
    mlp = theta["mlp"]
    n_layers = len(config.mlp_hidden) + 1
    n_el = config.mlp_element_size
    step_feats = F.step_features(state.iteration, config.step_timescales)
    consts = {
        "step": jnp.broadcast_to(step_feats, (n_tensors, step_feats.shape[0])),
        "log_num_tensors": jnp.full((n_tensors, 1), math.log(n_tensors) - 1.0, jnp.float32),
        "log_norm": jnp.stack([s["_log_norm"] for s in stats])[:, None],
        "log_num_elements": jnp.asarray([[math.log(p.shape[0])] for p in ps], jnp.float32),
        "conditioning": conditioning,
    }
    const_in = jnp.concatenate([consts[name] for name, _ in F.mlp_tensor_layout(config)], axis=1)
    bias0 = const_in @ mlp["w0"][n_el:] + mlp["b0"]  # (T, H0)

    # 7. Per-element MLP, direction/magnitude per scalar, message per tensor.
    w_last, b_last = mlp[f"w{n_layers - 1}"], mlp[f"b{n_layers - 1}"]
    updates, msgs = [], []
    for i, (x, mo) in enumerate(zip(columns, moments)):
        scale = _column_scale(mo)
        w0 = mlp["w0"][:n_el] * scale[:, None]
        hidden_w = [mlp[f"w{layer}"] for layer in range(1, n_layers - 1)]
        hidden_b = [mlp[f"b{layer}"] for layer in range(1, n_layers - 1)]
        out, mean_h = _per_element_mlp(x, w0, bias0[i], hidden_w, hidden_b,
                                       w_last[:, :2], b_last[:2])
        step = out[0] * jnp.exp(config.exp_mult * out[1]) * config.step_mult
        updates.append(-step)
        msgs.append(mean_h @ w_last[:, 2:] + b_last[2:])

    # Zero-element leaves: an empty update, accumulators unchanged (empty).
    upd_leaves = [jnp.zeros(jnp.shape(p), jnp.result_type(p)) for p in all_p]
    new_m, new_v = list(all_m), list(all_v)
    for i, u, m, v, p in zip(live, updates, ms, vs, p_leaves):
        upd_leaves[i] = u.reshape(jnp.shape(p)).astype(jnp.result_type(p))
        new_m[i] = m.reshape((k,) + jnp.shape(p))
        new_v[i] = v.reshape((k,) + jnp.shape(p))
    new_state = type(state)(
        m=treedef.unflatten(new_m),
        v=treedef.unflatten(new_v),
        iteration=state.iteration + 1,
        lstm_hidden=hidden,
        lstm_cell=cell,
        from_mlp=jnp.stack(msgs),
        from_lstm=from_lstm,
        train_loss=train,
        valid_loss=state.valid_loss,
        clip=clip,
        nonfinite_losses=nonfinite,
    )
    return treedef.unflatten(upd_leaves), new_state
