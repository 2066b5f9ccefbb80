"""lopt_trainer: the hierarchical learned optimizer (Metz et al. 2020), baselines, the inner training loop,
meta-training (``lopt_trainer.meta``), evaluation (``lopt_trainer.evaluation``) and the paper's experiments.

The learned optimizer is an optax transformation::

    tx = lopt_trainer.optax_lopt(lopt_trainer.pretrained())
    state = tx.init(params)
    updates, state = tx.update(grads, state, params, value=loss)
    params = optax.apply_updates(params, updates)

It only sees tasks through ``families.base.Task``.
"""

from lopt_trainer.baselines import (ADAM_LR_GRID, adam8p, adam_lr_grid, make_optimizer, nadamw,
                                    optimizer_factory, trial_grid)
from lopt_trainer.hierarchical import DEFAULT_CONFIG, LOptConfig, LOptState, observe_validation, update
from lopt_trainer.hierarchical import init as lopt_init
from lopt_trainer.hierarchical import init_state as lopt_init_state
from lopt_trainer.inner_loop import DEFAULT_VALID_EVERY, TrainResult, train, train_many
from taskgen.jax_cache import enable_compilation_cache
from lopt_trainer.opt_list import opt_list_trials
from lopt_trainer.optax_api import LOptTransformation, optax_lopt
from lopt_trainer.pretrained import pretrained, pretrained_path, pretrained_recipe
from lopt_trainer.reference_io import load_reference_npz, save_reference_npz
from lopt_trainer.selection import apply_global, select_global, select_per_task

__all__ = [
    "ADAM_LR_GRID", "DEFAULT_CONFIG", "DEFAULT_VALID_EVERY", "LOptConfig", "LOptState", "LOptTransformation",
    "TrainResult", "adam8p", "adam_lr_grid", "apply_global", "enable_compilation_cache", "load_reference_npz",
    "lopt_init", "lopt_init_state", "make_optimizer", "nadamw", "observe_validation", "opt_list_trials",
    "optax_lopt", "optimizer_factory", "pretrained", "pretrained_path", "pretrained_recipe", "save_reference_npz",
    "select_global", "select_per_task", "train", "train_many", "trial_grid", "update",
]
