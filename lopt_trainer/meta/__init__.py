"""Meta-training of learned optimizers: truncated PES/ES over the task suite, with exact resume and Ray.

Modules (one job each), from the run loop down:

* :mod:`~.trainer` — :func:`meta_train`: the run, read top to bottom, and the cadences between steps.
* :mod:`~.config` — :class:`MetaTrainConfig`, :func:`~.config.resolve_config` (defaults < file < ``--set`` <
  flags) and the narrow settings each part receives (:meth:`MetaTrainConfig.split`).
* :mod:`~.resume` — what ``--resume`` may change; :mod:`~.state` — the state, fresh, restored, saved.
* :mod:`~.outer` — one outer step and the outer optimizer; :mod:`~.plan` — which tasks each estimator runs.
* :mod:`~.work` — one estimator's share of a step (shared by local and Ray runs); :mod:`~.ray_pool` — Ray actors.
* :mod:`~.estimators` — the five estimators, one class and module each (:class:`~.estimators.PES`, the default;
  :class:`~.estimators.NRES`; :class:`~.estimators.ES`; :class:`~.estimators.TruncatedBackprop`;
  :class:`~.estimators.Hybrid`);
  :mod:`~.truncation` — one truncated unroll.
* :mod:`~.task_sampler` — grouping specs by compiled shape, drawing tasks.
* :mod:`~.run_panel`, :mod:`~.held_out`, :mod:`~.metrics` — how a run is watched; :mod:`~.portable` — the
  portable pretraining state.
"""

from lopt_trainer.meta.config import MetaTrainConfig, load_config, resolve_config
from lopt_trainer.meta.estimators import (ES, ESTIMATORS, NRES, PES, Estimator, EstimatorSettings, EstimatorState,
                                         Hybrid, TruncatedBackprop, estimate, init_estimator_state)
from lopt_trainer.meta.outer import build_outer_optimizer
from lopt_trainer.meta.trainer import RunResult, meta_train
from lopt_trainer.meta.truncation import HorizonSchedule, ProblemState, TaskFns, UnrollSettings
from lopt_trainer.optimizer.protocol import LearnedOptimizer, hierarchical_lopt, resolve_lopt
from lopt_trainer.theta.load import theta_bytes

__all__ = [
    "ES", "ESTIMATORS", "Estimator", "EstimatorSettings", "EstimatorState", "Hybrid", "NRES", "PES",
    "TruncatedBackprop", "HorizonSchedule", "LearnedOptimizer", "MetaTrainConfig", "ProblemState", "RunResult",
    "TaskFns", "UnrollSettings", "build_outer_optimizer", "estimate", "hierarchical_lopt", "init_estimator_state",
    "load_config", "meta_train", "resolve_config", "resolve_lopt", "theta_bytes",
]
