"""lopt_trainer: the hierarchical learned optimizer (Metz et al. 2020), baselines, the inner training loop,
meta-training and evaluation.

The learned optimizer is an optax transformation::

    tx = lopt_trainer.optax_lopt(lopt_trainer.pretrained())
    state = tx.init(params)
    updates, state = tx.update(grads, state, params, value=loss)
    params = optax.apply_updates(params, updates)

and, in Flax, :class:`~lopt_trainer.optimizer.flax_state.LOptTrainState` (``apply_gradients(grads=g, value=loss)``).

The package, from the top down (each part imports only the parts below it):

* :mod:`~lopt_trainer.app` — the command line (``taskgen train``, ``taskgen lopt …``), the work of ``taskgen train``;
* :mod:`~lopt_trainer.meta` — meta-training (config, estimators, the outer loop, checkpoints, the run's panel);
* :mod:`~lopt_trainer.evaluation` — the yardstick (θ on frozen valid / test task sets in normalized loss against
  committed AdamLR baselines: ``evaluate_yardstick``, ``compare_yardstick``), evaluations on other task draws,
  the quality panel;
* :mod:`~lopt_trainer.inner` — the inner training loop, the baselines, their curves;
  :mod:`~lopt_trainer.theta` — one loader for every way of naming θ, checks, the reference layout, the shipped θ;
* :mod:`~lopt_trainer.optimizer` — the optimizer's features and math, its protocol, the optax transformation;
* :mod:`~lopt_trainer.common` — run files (JSON, ``command.json``), the task pool, checkpoints, compiled
  programs, local Ray.

It only sees tasks through ``families.base.Task``. The public names below are imported on first use, so
``import lopt_trainer`` (and the command line) stays fast until one is needed. The lab (``make run`` and its
report, the release gate, the paper's experiments, the studies) lives in a checkout's ``research/``, not here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from taskgen import xla_cpu as _xla_cpu

_xla_cpu.apply()  # before JAX starts its CPU backend (an XLA CPU scheduler deadlock; see taskgen.xla_cpu)

_EXPORTS = {
    "ADAM_LR_GRID": "inner.baselines", "adam8p": "inner.baselines", "adam_lr_grid": "inner.baselines",
    "make_optimizer": "inner.baselines", "nadamw": "inner.baselines", "optimizer_factory": "inner.baselines",
    "trial_grid": "inner.baselines",
    "DEFAULT_CONFIG": "optimizer.hierarchical", "LOptConfig": "optimizer.hierarchical",
    "LOptState": "optimizer.hierarchical", "observe_validation": "optimizer.optax_api",
    "update": "optimizer.hierarchical",
    "DEFAULT_VALID_EVERY": "inner.loop", "TrainResult": "inner.loop", "train": "inner.loop",
    "train_many": "inner.loop",
    "enable_compilation_cache": "taskgen.jax_cache",
    "opt_list_trials": "inner.opt_list",
    "LOptTransformation": "optimizer.optax_api", "optax_lopt": "optimizer.optax_api",
    "LOptTrainState": "optimizer.flax_state",
    "pretrained": "theta.shipped", "pretrained_path": "theta.shipped", "pretrained_recipe": "theta.shipped",
    "load_theta": "theta.load", "theta_digest": "theta.load",
    "load_reference_npz": "theta.reference_io", "save_reference_npz": "theta.reference_io",
    "apply_global": "inner.selection", "select_global": "inner.selection", "select_per_task": "inner.selection",
    "meta_train": "meta.trainer", "MetaTrainConfig": "meta.config",
}
_RENAMED = {"lopt_init": ("optimizer.hierarchical", "init"), "lopt_init_state": ("optimizer.hierarchical", "init_state"),
            "evaluate_yardstick": ("evaluation.yardstick", "evaluate"),
            "compare_yardstick": ("evaluation.yardstick", "compare")}


if TYPE_CHECKING:  # the real imports, for editors and type checkers (at run time: on first use)
    from lopt_trainer.evaluation.yardstick import (compare as compare_yardstick,
        evaluate as evaluate_yardstick)  # noqa: F401
    from lopt_trainer.inner.baselines import (ADAM_LR_GRID, adam8p, adam_lr_grid, make_optimizer, nadamw,
        optimizer_factory, trial_grid)  # noqa: F401
    from lopt_trainer.inner.loop import DEFAULT_VALID_EVERY, TrainResult, train, train_many  # noqa: F401
    from lopt_trainer.inner.opt_list import opt_list_trials  # noqa: F401
    from lopt_trainer.inner.selection import apply_global, select_global, select_per_task  # noqa: F401
    from lopt_trainer.meta.config import MetaTrainConfig  # noqa: F401
    from lopt_trainer.meta.trainer import meta_train  # noqa: F401
    from lopt_trainer.optimizer.flax_state import LOptTrainState  # noqa: F401
    from lopt_trainer.optimizer.hierarchical import (DEFAULT_CONFIG, LOptConfig, LOptState, init as lopt_init,
        init_state as lopt_init_state, update)  # noqa: F401
    from lopt_trainer.optimizer.optax_api import LOptTransformation, observe_validation, optax_lopt  # noqa: F401
    from lopt_trainer.theta.load import load_theta, theta_digest  # noqa: F401
    from lopt_trainer.theta.reference_io import load_reference_npz, save_reference_npz  # noqa: F401
    from lopt_trainer.theta.shipped import pretrained, pretrained_path, pretrained_recipe  # noqa: F401
    from taskgen.jax_cache import enable_compilation_cache  # noqa: F401


def __getattr__(name: str):
    """The public names of :data:`__all__`, imported from their module on first use."""
    if name in _RENAMED:
        module, attr = _RENAMED[name]
    elif name in _EXPORTS:
        module, attr = _EXPORTS[name], name
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    full = module if module.startswith("taskgen") else f"{__name__}.{module}"
    value = getattr(importlib.import_module(full), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "ADAM_LR_GRID", "DEFAULT_CONFIG", "DEFAULT_VALID_EVERY", "LOptConfig", "LOptState", "LOptTrainState",
    "LOptTransformation", "MetaTrainConfig", "TrainResult", "adam8p", "adam_lr_grid", "apply_global",
    "compare_yardstick", "enable_compilation_cache", "evaluate_yardstick", "load_reference_npz", "load_theta",
    "lopt_init", "lopt_init_state", "make_optimizer", "meta_train", "nadamw", "observe_validation",
    "opt_list_trials", "optax_lopt", "optimizer_factory", "pretrained", "pretrained_path", "pretrained_recipe",
    "save_reference_npz", "select_global", "select_per_task", "theta_digest", "train", "train_many", "trial_grid",
    "update",
]
"""The public names, each imported from its module on first use (:data:`_EXPORTS`, :data:`_RENAMED`)."""
