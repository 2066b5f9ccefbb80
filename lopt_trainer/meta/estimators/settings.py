"""An estimator's settings and its per-slot state."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lopt_trainer.meta.estimators.kinds import DIFFERENCES, KINDS
from lopt_trainer.meta.truncation import ProblemState, TaskFns, UnrollSettings, fresh_problem

__all__ = ["EstimatorSettings", "EstimatorState", "estimator_state_shapes", "init_estimator_state", "part_mask"]


@dataclasses.dataclass(frozen=True)
class EstimatorSettings:
    """Estimator kind (one of :data:`KINDS`), σ (ES/PES/hybrid), ``bp_clip`` (the global-norm clip of each slot's
    backpropagated gradient; backprop and hybrid), the unroll settings, ``difference`` (one of
    :data:`DIFFERENCES`: how a slot's antithetic loss difference enters its ES/PES estimate) and ``parts`` (the
    top-level parts of θ that are perturbed and get a meta-gradient, :func:`part_mask`; None: all) (hashable)."""

    kind: str = "pes"
    sigma: float = 0.01
    unroll: UnrollSettings = UnrollSettings()
    bp_clip: float = 10.0
    difference: str = "value"
    parts: tuple | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown estimator {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.difference not in DIFFERENCES:
            raise ValueError(f"unknown loss difference {self.difference!r}; use one of {', '.join(DIFFERENCES)}")
        if self.difference == "sign" and self.kind in ("backprop", "hybrid"):
            raise ValueError(f"loss_difference='sign' applies to ES-type estimators (pes, nres, es); {self.kind} "
                             "uses the gradient itself")
        if not self.sigma > 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")
        if not self.bp_clip > 0:
            raise ValueError(f"bp_clip must be > 0, got {self.bp_clip}")
        if self.parts is not None and (not self.parts or not all(isinstance(p, str) for p in self.parts)):
            raise ValueError(f"parts must be a non-empty list of names of θ's parts, or None; got {self.parts!r}")


class EstimatorState(NamedTuple):
    """Per-slot state: ``particles`` (a :class:`ProblemState` with leading axes ``(n, 2)``) and the PES
    perturbation sums ``accum`` (θ-shaped with a leading ``n`` axis; zeros for ES)."""

    particles: ProblemState
    accum: Any


def _fresh_slots(theta, fns: TaskFns, lopt, n: int) -> EstimatorState:
    keys = jax.random.split(jax.random.PRNGKey(0), n)
    one = jax.vmap(lambda k: fresh_problem(theta, fns, lopt, k, 1))(keys)
    particles = jax.tree_util.tree_map(lambda x: jnp.stack([x, x], axis=1), one)
    accum = jax.tree_util.tree_map(lambda t: jnp.zeros((n,) + t.shape, t.dtype), theta)
    return EstimatorState(particles, accum)


def estimator_state_shapes(theta, fns: TaskFns, lopt, n: int) -> EstimatorState:
    """The shapes and dtypes (``jax.ShapeDtypeStruct`` leaves) of :func:`init_estimator_state`'s state."""
    shapes = jax.eval_shape(functools.partial(_fresh_slots, fns=fns, lopt=lopt, n=n), theta)
    return jax.tree_util.tree_map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype), shapes)


def init_estimator_state(theta, fns: TaskFns, lopt, n: int) -> EstimatorState:
    """An all-zeros state for ``n`` slots (every slot must be reset at its first use).

    The zeros are host (numpy) arrays: building them dispatches nothing to XLA, so a new group costs no compile.
    """
    return jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), estimator_state_shapes(theta, fns, lopt, n))


def part_mask(theta, parts) -> np.ndarray | None:
    """Which entries of raveled θ belong to the named top-level parts (the keys of θ's outer dict).

    Args:
      theta: θ (a dict of parts for the hierarchical optimizer: ``mlp``, ``lstm``, ``to_mlp``, …).
      parts: part names, or None for all of θ.

    Returns:
      float32 ``(|θ|,)``, 1 inside the parts and 0 elsewhere; None when ``parts`` is None.

    Raises:
      ValueError: a name is not a top-level part of θ (the message lists θ's parts).
    """
    if parts is None:
        return None
    names = list(theta) if isinstance(theta, dict) else []
    unknown = [p for p in parts if p not in names]
    if unknown:
        raise ValueError(f"train_parts {list(unknown)} are not parts of θ; θ's parts: {names or 'none (not a dict)'}")
    leaves = jax.tree_util.tree_flatten_with_path(theta)[0]
    return np.concatenate([np.full(int(np.size(x)), float(path[0].key in parts), np.float32)
                           for path, x in leaves])

