"""Inner problems seen through truncations: their state, horizons, offsets, resets, and one truncated unroll.

One *particle* is one inner training run (one task, one parameter vector, one learned-optimizer state) driven by
one perturbed θ. Its :class:`ProblemState` counts steps towards a *horizon*; when the horizon is reached the
particle goes idle for the rest of the truncation and the host resets it (new task from the sampler, new init)
before the next truncation. Idle steps cost compute but keep every particle on its own task's data, so no update
is ever applied with another task's data.

Horizons (:class:`HorizonSchedule`): ``constant`` or ``log_uniform`` between ``min`` and ``max``; both ends may
move linearly to ``final_min``/``final_max`` over ``anneal_steps`` outer steps. Random initial offsets: the
*first* problem of every slot gets a uniformly random part ``U(0, 1]`` of its drawn horizon, so resets are
desynchronised from the start without burn-in compute.

Meta-loss per step: the task's ``normalizer`` of the training loss (before the update) or of the outer-valid loss
of the post-update parameters. With ``loss_scale="initial"`` it is further divided by the problem's own normalised
training loss at its first step (at least ``scale_floor``), so every task starts at 1 and families whose
normalised losses live on different scales (a classifier at chance is ~7, a solved 2-D problem ~0) weigh alike in
the meta-gradient; ``loss_clip`` then caps that ratio (the paper normalises by the initial loss in the same way).
Non-finite raw or normalised losses are replaced by ``loss_clip`` (default 20; the
built-in normalizers map an untrained model to about 1-10) and every finite value is capped at ``loss_clip``;
once a particle produced a non-finite loss it is *diverged*: its parameters freeze and each of its remaining
active steps scores ``loss_clip``. Every replaced step is counted.

Late-phase meta-loss: with ``meta_loss_from=k`` the steps of a problem before its step ``k`` train as usual but
score nothing; the meta-loss is the mean over the counted steps only, and a truncation that ends before step ``k``
carries no signal (its slot counts as not trained; PES still accumulates its perturbation, so the late loss's
gradient reaches θ's early behaviour; ES and truncated backprop see no such credit). The estimator keeps a diverged
problem, frozen, to its horizon instead of resetting it, so its late steps score ``loss_clip``. A truncation that
straddles step k averages over its counted steps only. An outer step in which no slot counted a step (all problems
still before k, as in the first k / truncation steps of a run) leaves θ and the outer optimizer as they are. This
aims the meta-objective at the loss late in a run, where the quality benchmark judges the final loss, instead of
the whole run's mean, which the large early losses dominate.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class ProblemState(NamedTuple):
    """State of one particle: parameters, learned-optimizer state, steps done, horizon, diverged flag, and the
    normalised training loss at the problem's first step (``init_loss``, the scale of a relative meta-loss)."""

    params: Any
    opt_state: Any
    step: jax.Array
    horizon: jax.Array
    diverged: jax.Array
    init_loss: jax.Array


class TaskFns(NamedTuple):
    """The four shared function objects of tasks with one ``static_key``."""

    init: Any
    loss: Any
    sample_batch: Any
    normalizer: Any

    @classmethod
    def of(cls, task) -> "TaskFns":
        """The functions of a ``families.base.Task``."""
        return cls(task.init, task.loss, task.sample_batch, task.normalizer)


@dataclasses.dataclass(frozen=True)
class UnrollSettings:
    """Static settings of a truncated unroll (hashable: part of the compile key)."""

    truncation: int = 50
    meta_loss: str = "train"          # "train" | "outer_valid"
    loss_clip: float = 20.0
    valid_every: int = 10             # 0 = never feed a validation loss
    valid_split: str = "inner_valid"
    loss_scale: str = "none"          # "none" | "initial": divide by the problem's initial loss (see module doc)
    scale_floor: float = 0.5
    meta_loss_from: int = 0           # inner steps before this one train but do not count in the meta-loss

    def __post_init__(self):
        if self.meta_loss_from < 0:
            raise ValueError(f"meta_loss_from must be >= 0, got {self.meta_loss_from}")
        if self.meta_loss not in ("train", "outer_valid"):
            raise ValueError(f"unknown meta_loss {self.meta_loss!r}; use 'train' or 'outer_valid'")
        if self.loss_scale not in ("none", "initial"):
            raise ValueError(f"unknown loss_scale {self.loss_scale!r}; use 'none' or 'initial'")
        if not self.scale_floor > 0:
            raise ValueError(f"scale_floor must be > 0, got {self.scale_floor}")

    def splits_needed(self, feeds_validation: bool) -> tuple[str, ...]:
        """The data splits an unroll reads."""
        out = ["train"]
        if self.meta_loss == "outer_valid":
            out.append("outer_valid")
        if feeds_validation and self.valid_every > 0 and self.valid_split not in out:
            out.append(self.valid_split)
        return tuple(out)


@dataclasses.dataclass(frozen=True)
class HorizonSchedule:
    """Inner-horizon distribution, optionally moving over outer steps (see the module docstring)."""

    kind: str = "log_uniform"         # "constant" | "log_uniform"
    min: int = 100
    max: int = 1000
    final_min: int | None = None
    final_max: int | None = None
    anneal_steps: int = 0

    def bounds(self, outer_step: int) -> tuple[float, float]:
        """``(low, high)`` at ``outer_step``."""
        lo, hi = float(self.min), float(self.max)
        if self.anneal_steps > 0:
            f = min(1.0, outer_step / self.anneal_steps)
            lo += f * ((self.final_min if self.final_min is not None else self.min) - lo)
            hi += f * ((self.final_max if self.final_max is not None else self.max) - hi)
        return lo, hi

    def sample(self, rng: np.random.Generator, n: int, outer_step: int) -> np.ndarray:
        """``n`` horizons (int32, ≥ 1) for ``outer_step``."""
        lo, hi = self.bounds(outer_step)
        if self.kind == "constant":
            h = np.full(n, hi)
        elif self.kind == "log_uniform":
            h = np.exp(rng.uniform(math.log(lo), math.log(max(hi, lo)), size=n))
        else:
            raise ValueError(f"unknown horizon schedule {self.kind!r}; use 'constant' or 'log_uniform'")
        return np.maximum(1, np.round(h)).astype(np.int32)


def initial_offsets(rng: np.random.Generator, horizons: np.ndarray) -> np.ndarray:
    """First horizons shortened by a random offset: ``ceil(U(0, 1] · horizon)``."""
    u = 1.0 - rng.uniform(size=horizons.shape)
    return np.maximum(1, np.ceil(u * horizons)).astype(np.int32)


def tree_where(pred, on_true, on_false):
    """Leafwise ``where`` with a scalar predicate."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def problem_from_params(theta, params, lopt, init_key, horizon) -> ProblemState:
    """A new problem starting from ``params``: the optimizer's initial state, step 0."""
    opt_state = lopt.init_state(theta, params, jax.random.fold_in(init_key, 1))
    return ProblemState(params, opt_state, jnp.zeros((), jnp.int32), jnp.asarray(horizon, jnp.int32),
                        jnp.zeros((), bool), jnp.ones((), jnp.float32))


def fresh_problem(theta, fns: TaskFns, lopt, init_key, horizon) -> ProblemState:
    """A new problem: ``fns.init(init_key)``, the optimizer's initial state, step 0."""
    return problem_from_params(theta, fns.init(init_key), lopt, init_key, horizon)


def _train_step(theta, fns: TaskFns, lopt, settings: UnrollSettings, data, carry, key):
    """One inner step of a particle; returns the new carry and the step's (meta-loss, counted, clipped): counted =
    active (before the horizon) and at or after ``settings.meta_loss_from``; the meta-loss is 0 where not counted."""
    ps = carry
    k_batch, k_loss, k_opt, k_ov, k_ovl = jax.random.split(key, 5)
    active = ps.step < ps.horizon
    live = active & ~ps.diverged
    batch = fns.sample_batch(data["train"], k_batch)
    loss, grads = jax.value_and_grad(fns.loss)(ps.params, batch, k_loss)
    updates, opt_state = lopt.update(theta, grads, ps.opt_state, ps.params, loss, k_opt)
    params = jax.tree_util.tree_map(lambda p, u: (p + u).astype(p.dtype), ps.params, updates)
    if settings.meta_loss == "outer_valid":
        raw = fns.loss(params, fns.sample_batch(data["outer_valid"], k_ov), k_ovl)
    elif settings.meta_loss == "train":
        raw = loss
    else:
        raise ValueError(f"unknown meta_loss {settings.meta_loss!r}; use 'train' or 'outer_valid'")
    norm = fns.normalizer(raw)
    bad = ~(jnp.isfinite(loss) & jnp.isfinite(raw) & jnp.isfinite(norm))
    clip = jnp.float32(settings.loss_clip)
    diverged = ps.diverged | (live & bad)
    train_norm = norm if settings.meta_loss == "train" else fns.normalizer(loss)
    init_loss = jnp.where((ps.step == 0) & jnp.isfinite(train_norm), train_norm, ps.init_loss)
    if settings.loss_scale == "initial":
        norm = norm / jnp.maximum(jnp.abs(init_loss), jnp.float32(settings.scale_floor))
    meta = jnp.where(diverged, clip, jnp.minimum(jnp.nan_to_num(norm, nan=clip, posinf=clip), clip))
    moved = ProblemState(params, opt_state, ps.step + 1, ps.horizon, ps.diverged, init_loss)
    frozen = ps._replace(step=jnp.where(active, ps.step + 1, ps.step), diverged=diverged, init_loss=init_loss)
    new = tree_where(live & ~bad, moved, frozen)
    counted = active & (ps.step >= settings.meta_loss_from)
    return new, (jnp.where(counted, meta, 0.0), counted, counted & diverged)


def _feed_validation(fns: TaskFns, lopt, settings: UnrollSettings, data, ps: ProblemState, key):
    """Feed one validation loss (of ``settings.valid_split``) to the optimizer state of a live particle."""
    k_b, k_l = jax.random.split(key)
    vloss = fns.loss(ps.params, fns.sample_batch(data[settings.valid_split], k_b), k_l)
    live = (ps.step <= ps.horizon) & ~ps.diverged & jnp.isfinite(vloss)
    fed = lopt.observe_validation(ps.opt_state, jnp.where(jnp.isfinite(vloss), vloss, 0.0))
    return ps._replace(opt_state=tree_where(live, fed, ps.opt_state))


def unroll(theta, ps: ProblemState, data, key, fns: TaskFns, lopt, settings: UnrollSettings, length=None):
    """Run one particle for ``length`` (default ``settings.truncation``) steps under θ.

    The steps are a ``lax.scan``; after every ``valid_every``-th step of the truncation a validation loss is fed
    (exact cadence when the truncation is a multiple of ``valid_every``). Step keys are
    ``fold_in(key, t)`` so antithetic particles given the same ``key`` see the same batches.

    Returns ``(state, per_step_meta_loss (T,), counted (T,), clipped (T,))``: ``counted`` marks the active steps
    (before the horizon; a diverged particle's frozen steps included, each scoring ``loss_clip``) at or after
    ``settings.meta_loss_from``; the meta-loss of the others is 0.
    """
    length = settings.truncation if length is None else length
    k = settings.valid_every if (settings.valid_every > 0 and lopt.observe_validation is not None) else 0

    def one(carry, t):
        return _train_step(theta, fns, lopt, settings, data, carry, jax.random.fold_in(key, t))

    if k == 0 or length < k:
        ps, ys = jax.lax.scan(one, ps, jnp.arange(length))
        return (ps, *ys)
    n_chunks, rem = divmod(length, k)

    def chunk(carry, c):
        carry, ys = jax.lax.scan(one, carry, c * k + jnp.arange(k))
        vkey = jax.random.fold_in(jax.random.fold_in(key, 1_000_003), c)
        return _feed_validation(fns, lopt, settings, data, carry, vkey), ys

    ps, ys = jax.lax.scan(chunk, ps, jnp.arange(n_chunks))
    ys = jax.tree_util.tree_map(lambda y: y.reshape((n_chunks * k,) + y.shape[2:]), ys)
    if rem:
        ps, ys2 = jax.lax.scan(one, ps, n_chunks * k + jnp.arange(rem))
        ys = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), ys, ys2)
    return (ps, *ys)
