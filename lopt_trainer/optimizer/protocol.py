"""The small protocol a learned optimizer must follow to be meta-trained here.

A :class:`LearnedOptimizer` is a frozen bundle of pure functions::

    theta = lopt.init(key)                                           # meta-parameters (a pytree)
    state = lopt.init_state(theta, params, key)                      # inner state of one problem
    updates, state = lopt.update(theta, grads, state, params, loss, key)   # params + updates = new params
    state = lopt.observe_validation(state, valid_loss)               # optional, every ``valid_every`` steps

Parameters live *beside* the inner state (as in optax), so any ``(updates, state)`` optimizer fits. Instances are
hashable by identity; :func:`resolve_lopt` returns the same object for the same name, so compiled unrolls are
reused.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable
from typing import Any

from lopt_trainer.optimizer import hierarchical


@dataclasses.dataclass(frozen=True, eq=False)
class LearnedOptimizer:
    """A learned optimizer as pure functions (see the module docstring).

    ``observe_validation`` may be ``None`` (the optimizer then takes no validation loss); ``valid_every`` is the
    cadence, in inner steps, at which training loops feed it. ``init_handset(key)``, optional, gives a θ whose
    untrained optimizer is already a sane hand-designed rule (``theta_init="handset"`` of a meta-training run).
    """

    name: str
    init: Callable[[Any], Any]
    init_state: Callable[[Any, Any, Any], Any]
    update: Callable[..., tuple[Any, Any]]
    observe_validation: Callable[[Any, Any], Any] | None = None
    valid_every: int = 10
    init_handset: Callable[[Any], Any] | None = None


def _hier_init_state(config, theta, params, key):
    del key
    return hierarchical.init_state(theta, params, config)


def _hier_update(config, theta, grads, state, params, loss, key):
    del key
    return hierarchical.update(theta, grads, state, params, loss, config)


def _hier_observe(config, state, valid_loss):
    return hierarchical.observe_validation(state, valid_loss, config)


def _hier_init(config, key):
    return hierarchical.init(key, config)


def _hier_init_handset(config, key):
    return hierarchical.init_handset(key, config)


@functools.lru_cache(maxsize=None)
def hierarchical_lopt(config=None) -> LearnedOptimizer:
    """The hierarchical optimizer of :mod:`lopt_trainer.optimizer.hierarchical` (``config``: a ``LOptConfig``; default
    sizes when ``None``). Cached: equal configs give the same object."""
    config = config or hierarchical.DEFAULT_CONFIG
    return LearnedOptimizer(
        name="hierarchical",
        init=functools.partial(_hier_init, config),
        init_state=functools.partial(_hier_init_state, config),
        update=functools.partial(_hier_update, config),
        observe_validation=functools.partial(_hier_observe, config),
        valid_every=int(config.valid_every),
        init_handset=functools.partial(_hier_init_handset, config),
    )


@functools.lru_cache(maxsize=None)
def resolve_lopt(name: str) -> LearnedOptimizer:
    """A learned optimizer by name: ``"hierarchical"`` (default sizes) or ``"package.module:factory"`` (a
    zero-argument callable returning a :class:`LearnedOptimizer`, or the object itself). Cached per name."""
    if name == "hierarchical":
        return hierarchical_lopt()
    if ":" not in name:
        raise ValueError(f"unknown learned optimizer {name!r}: use 'hierarchical' or 'module:factory'")
    module, attr = name.split(":", 1)
    obj = getattr(importlib.import_module(module), attr)
    lopt = obj() if callable(obj) and not isinstance(obj, LearnedOptimizer) else obj
    if not isinstance(lopt, LearnedOptimizer):
        raise TypeError(f"{name!r} did not give a LearnedOptimizer (got {type(lopt).__name__})")
    return lopt
