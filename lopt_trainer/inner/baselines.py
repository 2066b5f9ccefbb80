"""Baseline optimizers the learned optimizer is judged against, as optax transformations.

Three baselines, each a family of trials (one hyperparameter dict per trial):

* **AdamLR** (``"adamlr"``): optax Adam (β1 0.9, β2 0.999, ε 1e-8) over a learning-rate grid. The default grid
  is 14 values at half-decade spacing, ``10**(-7 + 0.5·i)`` for i = 0…13, i.e. 1e-7, 3.16e-7, …, 1e-1, 10^-0.5
  (≈ 0.316); see :data:`ADAM_LR_GRID`.
* **Adam8p** (``"adam8p"``): TaskSet's 8-hyperparameter Adam (lr, β1, β2, ε, linear decay, exponential decay,
  L1, L2) by random search over TaskSet's ranges; see :func:`adam8p` and :func:`sample_adam8p`.
* **opt_list** (``"opt_list"``): NAdamW with the first N of TaskSet's ordered 1000 configurations; see
  :func:`nadamw`, :func:`cosine_warmup_schedule` and :mod:`lopt_trainer.inner.opt_list`.

Plus ``"adam"``: plain Adam at one learning rate (``{"learning_rate": lr}``).

Every builder accepts hyperparameters as Python floats *or* JAX arrays (also tracers), so the inner loop can
pass them as jit arguments and ``vmap`` over trials; nothing branches in Python on a hyperparameter's value.
"""

from __future__ import annotations

import functools
import hashlib
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lopt_trainer.inner import opt_list as _opt_list
from lopt_trainer.inner.names import BASELINES

ADAM_LR_GRID = tuple(10.0 ** (-7.0 + 0.5 * i) for i in range(14))
"""AdamLR's default grid: 14 learning rates at half-decade spacing, 1e-7 … 10^-0.5 (≈ 0.316)."""

ADAM8P_REFERENCE_STEPS = 10_000
"""Adam8p's decay rates are defined per step of a 10k-step run (TaskSet meta-trained with 10k steps)."""

ADAM8P_RANGES = {
    # name: (low, high, transform) -- drawn log-uniformly in [low, high]; "one_minus" stores 1 - draw.
    "learning_rate": (1e-8, 1e1, "identity"),
    "beta1": (1e-4, 1e0, "one_minus"),
    "beta2": (1e-6, 1e0, "one_minus"),
    "epsilon": (1e-10, 1e3, "identity"),
    "linear_decay": (1e-7, 1e-4, "identity"),
    "exponential_decay": (1e-6, 1e-3, "identity"),
    "l1": (1e-8, 1e1, "identity"),
    "l2": (1e-8, 1e1, "identity"),
}
"""TaskSet's Adam8p search ranges (``adam8p_wide_grid``): lr logU[1e-8, 10]; 1−β1 logU[1e-4, 1];
1−β2 logU[1e-6, 1]; ε logU[1e-10, 1e3]; linear decay logU[1e-7, 1e-4]; exponential decay logU[1e-6, 1e-3];
L1, L2 logU[1e-8, 10]."""

# ----------------------------------------------------------------------------------------------- AdamLR / Adam


def adam_lr_grid(n: int = 14, low: float = 1e-7, high: float = 10.0**-0.5) -> list[float]:
    """``n`` learning rates evenly spaced in log10 from ``low`` to ``high`` inclusive.

    With the defaults this is :data:`ADAM_LR_GRID` (half-decade spacing). Returns a list of floats.
    """
    if n < 1:
        raise ValueError(f"need at least one learning rate, got n={n}")
    if n == 1:
        return [float(low)]
    a, b = math.log10(low), math.log10(high)
    return [float(10.0 ** (a + (b - a) * i / (n - 1))) for i in range(n)]


def adam(learning_rate) -> optax.GradientTransformation:
    """optax Adam (β1 0.9, β2 0.999, ε 1e-8) with the learning rate injected as state (``optax.inject_hyperparams``),
    so ``learning_rate`` may be an array or tracer and can be read or changed in the optimizer state."""
    return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)


# ---------------------------------------------------------------------------------------------------- Adam8p


def adam8p_schedule(learning_rate, linear_decay, exponential_decay, total_steps: int) -> optax.Schedule:
    """TaskSet's Adam8p learning-rate schedule, rescaled to a run of ``total_steps`` steps.

    ``lr(t) = learning_rate · max(1 − linear_decay·s, 0) · exp(−exponential_decay·s)`` with
    ``s = t · 10000 / total_steps``: the decay rates are per step of a 10k-step run, and the step counter is
    stretched so that a run of any length ends with the same decay factors a 10k-step run would end with.
    ``t`` counts from 0 (the first update uses ``lr(0) = learning_rate``). Returns an optax schedule.
    """
    scale = ADAM8P_REFERENCE_STEPS / float(max(int(total_steps), 1))

    def schedule(count):
        s = jnp.asarray(count, jnp.float32) * scale
        linear = jnp.maximum(1.0 - linear_decay * s, 0.0)
        return learning_rate * linear * jnp.exp(-exponential_decay * s)

    return schedule


def add_l1_l2_gradient(l1, l2) -> optax.GradientTransformation:
    """Add the gradient of ``l1·‖p‖₁ + l2·‖p‖₂²`` (TaskSet adds both terms to the loss), i.e.
    ``g + l1·sign(p) + 2·l2·p``. Needs ``params`` in ``update``."""

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("add_l1_l2_gradient needs params")
        updates = jax.tree_util.tree_map(lambda g, p: g + l1 * jnp.sign(p) + 2.0 * l2 * p, updates, params)
        return updates, state

    return optax.GradientTransformation(init_fn, update_fn)


def adam8p(
    learning_rate,
    beta1,
    beta2,
    epsilon,
    linear_decay,
    exponential_decay,
    l1,
    l2,
    *,
    total_steps: int,
) -> optax.GradientTransformation:
    """TaskSet's Adam8p as an optax transformation.

    ``g ← ∇(f + l1‖p‖₁ + l2‖p‖₂²)``; ``m ← β1·m + (1−β1)·g``; ``v ← β2·v + (1−β2)·g²``;
    ``p ← p − lr(t) · m̂ / (sqrt(v̂ + 1e-10) + ε)`` with bias-corrected ``m̂, v̂`` and ``lr(t)`` from
    :func:`adam8p_schedule` (decays rescaled to ``total_steps``). Returns a ``GradientTransformation``.
    """
    return optax.chain(
        add_l1_l2_gradient(l1, l2),
        optax.scale_by_adam(b1=beta1, b2=beta2, eps=epsilon, eps_root=1e-10),
        optax.scale_by_learning_rate(adam8p_schedule(learning_rate, linear_decay, exponential_decay, total_steps)),
    )


def _hash_uniform(*parts) -> float:
    """A uniform draw in [0, 1) that depends only on ``parts`` (stable across numpy versions and platforms)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _log_uniform(u: float, low: float, high: float) -> float:
    return float(math.exp(math.log(low) + u * (math.log(high) - math.log(low))))


def sample_adam8p(n: int, seed: int = 0) -> list[dict]:
    """``n`` Adam8p trials drawn from :data:`ADAM8P_RANGES`, deterministically from ``seed``.

    Each value is a hash-based draw keyed on ``(seed, trial index, hyperparameter name)``, so trial i is the
    same whatever ``n`` is (the first 5 of 10 draws equal the 5 draws) and the same on every machine. Decay
    values are per step of a 10k-step run (see :func:`adam8p_schedule`). Returns a list of dicts of floats.
    """
    trials = []
    for i in range(n):
        hp = {}
        for name, (low, high, kind) in ADAM8P_RANGES.items():
            x = _log_uniform(_hash_uniform("adam8p", int(seed), i, name), low, high)
            hp[name] = 1.0 - x if kind == "one_minus" else x
        trials.append(hp)
    return trials


# ------------------------------------------------------------------------------------------ NAdamW / opt_list


def cosine_warmup_schedule(
    learning_rate,
    total_steps: int,
    warmup_fraction,
    constant_fraction,
    min_learning_rate_mult,
) -> optax.Schedule:
    """TaskSet's opt_list schedule: warmup, constant, cosine decay.

    With ``T = total_steps``, ``W = T·min(warmup_fraction, constant_fraction)``, ``C = T·constant_fraction``
    and ``t`` clipped to ``[0, T]``:

    * ``t < W``: linear warmup ``lr·t/W`` (so the very first update, t = 0, has lr 0 when W > 0);
    * ``W ≤ t ≤ C``: ``lr``;
    * ``C < t ≤ T``: ``lr_min + (lr − lr_min)·(1 + cos(π·(t − C)/(T − C)))/2`` with
      ``lr_min = min_learning_rate_mult·lr``, reaching ``lr_min`` at ``t = T``.

    The warmup length uses ``min`` as TaskSet (and the paper) do; the learned_optimization JAX port uses
    ``max(warmup_fraction, constant_fraction)`` there, which is a bug (it stretches the warmup over the whole
    constant phase). Returns an optax schedule (``count -> lr``).
    """
    T = float(total_steps)

    def schedule(count):
        t = jnp.minimum(jnp.asarray(count, jnp.float32), T)
        c_steps = T * constant_fraction
        w_steps = T * jnp.minimum(warmup_fraction, constant_fraction)
        lr_min = min_learning_rate_mult * learning_rate
        decay_len = T - c_steps
        safe_len = jnp.where(decay_len > 0, decay_len, 1.0)
        x = jnp.maximum(t, c_steps) - c_steps
        decayed = (learning_rate - lr_min) * (jnp.cos(x * jnp.pi / safe_len) / 2.0 + 0.5) + lr_min
        warm = learning_rate * t / jnp.where(w_steps > 0, w_steps, 1.0)
        return jnp.where(t < w_steps, warm, decayed)

    return schedule


class NAdamWState(NamedTuple):
    """State of :func:`nadamw`: step count, first and second moment accumulators."""

    count: jax.Array
    mu: Any
    nu: Any


def nadamw(
    learning_rate,
    beta1,
    beta2,
    epsilon,
    use_nesterov,
    adamw_weight_decay,
    l2_weight_decay,
    warmup_fraction,
    min_learning_rate_mult,
    constant_fraction,
    *,
    total_steps: int,
) -> optax.GradientTransformation:
    """TaskSet's NAdamW (Adam / NAdam / AdamW / NAdamW) with :func:`cosine_warmup_schedule`.

    At step ``t = count + 1`` with schedule value ``lr = schedule(count)``::

        g   = grad + l2_weight_decay · p                  # L2 added to the gradient (enters the moments)
        m   = β1·m + (1−β1)·g;   v = β2·v + (1−β2)·g²
        lrₜ = lr · sqrt(1 − β2ᵗ) / (1 − β1ᵗ)               # bias correction folded into the step size
        n   = β1·m + (1−β1)·g  if use_nesterov else m
        p  ← p − lrₜ · ( n / (sqrt(v) + ε) + adamw_weight_decay · p )   # decoupled weight decay

    ε is Kingma & Ba's "ε-hat" (added to the uncorrected sqrt(v)), as in TaskSet, so the list's ε values keep
    their meaning. TaskSet's TF and opt_list's JAX code write the L2 term as ``grad − l2·p``; we add it
    (``+ l2·p``, a real L2 penalty ``l2/2·‖p‖²``) as the hyperparameter's name and the paper describe.
    ``use_nesterov`` may be a bool or a 0/1 array. Returns a ``GradientTransformation``.
    """
    schedule = cosine_warmup_schedule(learning_rate, total_steps, warmup_fraction, constant_fraction,
                                      min_learning_rate_mult)

    def init_fn(params):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return NAdamWState(count=jnp.zeros([], jnp.int32), mu=zeros, nu=jax.tree_util.tree_map(jnp.zeros_like, params))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("nadamw needs params")
        g = jax.tree_util.tree_map(lambda gr, p: gr + l2_weight_decay * p, updates, params)
        mu = jax.tree_util.tree_map(lambda m, gi: beta1 * m + (1.0 - beta1) * gi, state.mu, g)
        nu = jax.tree_util.tree_map(lambda v, gi: beta2 * v + (1.0 - beta2) * gi * gi, state.nu, g)
        t = (state.count + 1).astype(jnp.float32)
        lr_t = schedule(state.count) * jnp.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
        nesterov = jnp.asarray(use_nesterov, jnp.float32) > 0.5

        def step(m, v, gi, p):
            num = jnp.where(nesterov, beta1 * m + (1.0 - beta1) * gi, m)
            return -lr_t * (num / (jnp.sqrt(v) + epsilon) + adamw_weight_decay * p)

        new_updates = jax.tree_util.tree_map(step, mu, nu, g, params)
        return new_updates, NAdamWState(count=optax.safe_int32_increment(state.count), mu=mu, nu=nu)

    return optax.GradientTransformation(init_fn, update_fn)


# ------------------------------------------------------------------------------------------- name → optimizer

_KEYS = {
    "adam": ("learning_rate",),
    "adamlr": ("learning_rate",),
    "adam8p": tuple(ADAM8P_RANGES),
    "opt_list": _opt_list.OPT_LIST_KEYS,
}


def make_optimizer(name: str, hparams: dict, total_steps: int) -> optax.GradientTransformation:
    """Build baseline ``name`` (one of :data:`~lopt_trainer.inner.names.BASELINES`) with one trial's ``hparams``
    for a ``total_steps`` run.

    ``hparams`` is a dict with exactly the keys of that baseline (``learning_rate`` for adam/adamlr; the keys of
    :data:`ADAM8P_RANGES` for adam8p; :data:`lopt_trainer.inner.opt_list.OPT_LIST_KEYS` for opt_list); values may
    be floats or arrays. ``total_steps`` sets the schedules (adam8p, opt_list). Returns an optax
    ``GradientTransformation``.
    """
    if name not in _KEYS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {BASELINES}")
    missing = set(_KEYS[name]) - set(hparams)
    extra = set(hparams) - set(_KEYS[name])
    if missing or extra:
        raise ValueError(f"{name} hyperparameters: missing {sorted(missing)}, unexpected {sorted(extra)}")
    if name in ("adam", "adamlr"):
        return adam(hparams["learning_rate"])
    if name == "adam8p":
        return adam8p(**hparams, total_steps=total_steps)
    return nadamw(**hparams, total_steps=total_steps)


@functools.lru_cache(maxsize=None)
def optimizer_factory(name: str, total_steps: int):
    """A function ``hparams -> GradientTransformation`` for baseline ``name`` and a ``total_steps`` run.

    The same (name, total_steps) always returns the *same* function object, so the inner loop's compiled-code
    cache (keyed on the factory) is reused across trials, tasks and calls.
    """
    if name not in _KEYS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {BASELINES}")
    return functools.partial(make_optimizer, name, total_steps=total_steps)


def trial_grid(name: str, n: int | None = None, seed: int = 0) -> list[dict]:
    """The hyperparameter dicts of ``n`` trials of baseline ``name``.

    * ``adamlr``: ``n`` learning rates log-spaced over [1e-7, 10^-0.5] (default n = 14 = :data:`ADAM_LR_GRID`);
    * ``adam8p``: ``n`` seeded random draws (:func:`sample_adam8p`; default n = 10);
    * ``opt_list``: the first ``n`` configurations (default n = 10);
    * ``adam``: ``n`` must be None or 1: ``[{"learning_rate": 1e-3}]``.

    ``seed`` only affects adam8p. Returns a list of dicts of floats (bool ``use_nesterov`` for opt_list).
    """
    if name == "adamlr":
        return [{"learning_rate": lr} for lr in adam_lr_grid(14 if n is None else n)]
    if name == "adam8p":
        return sample_adam8p(10 if n is None else n, seed)
    if name == "opt_list":
        return _opt_list.opt_list_trials(10 if n is None else n)
    if name == "adam":
        if n not in (None, 1):
            raise ValueError("adam is a single setting; use adamlr for a learning-rate grid")
        return [{"learning_rate": 1e-3}]
    raise ValueError(f"unknown optimizer {name!r}; expected one of {BASELINES}")
