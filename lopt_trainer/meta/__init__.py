"""Meta-training of learned optimizers: truncated PES/ES over the task suite, with exact resume and Ray.

Modules (one job each):

* :mod:`~lopt_trainer.meta.protocol` — the learned-optimizer protocol (:class:`LearnedOptimizer`) and the
  hierarchical optimizer adapter.
* :mod:`~lopt_trainer.meta.truncation` — inner-problem state, horizons, offsets, resets, one truncated unroll.
* :mod:`~lopt_trainer.meta.estimators` — antithetic PES (default) and ES over vmapped slots.
* :mod:`~lopt_trainer.meta.task_sampler` — filtering specs, grouping by compiled shape, drawing tasks.
* :mod:`~lopt_trainer.meta.work` — one estimator's share of an outer step (shared by local and Ray runs).
* :mod:`~lopt_trainer.meta.trainer` — the outer loop (:func:`meta_train`).
* :mod:`~lopt_trainer.meta.checkpoint`, :mod:`~lopt_trainer.meta.metrics`, :mod:`~lopt_trainer.meta.evaluation`.
* :mod:`~lopt_trainer.meta.ray_backend` — gradient workers as Ray actors (Ray imported lazily).
* ``taskgen lopt meta-train`` and ``taskgen lopt plot`` are declared in :mod:`lopt_trainer.cli`.
"""

from lopt_trainer.meta.config import MetaTrainConfig, load_config
from lopt_trainer.meta.estimators import EstimatorSettings, EstimatorState, estimate, init_estimator_state
from lopt_trainer.meta.protocol import LearnedOptimizer, hierarchical_lopt, resolve_lopt
from lopt_trainer.meta.trainer import RunResult, build_outer_optimizer, meta_train, theta_bytes
from lopt_trainer.meta.truncation import HorizonSchedule, ProblemState, TaskFns, UnrollSettings

__all__ = [
    "EstimatorSettings", "EstimatorState", "HorizonSchedule", "LearnedOptimizer", "MetaTrainConfig",
    "ProblemState", "RunResult", "TaskFns", "UnrollSettings", "build_outer_optimizer", "estimate",
    "hierarchical_lopt", "init_estimator_state", "load_config", "meta_train", "resolve_lopt", "theta_bytes",
]
