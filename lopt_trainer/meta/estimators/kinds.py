"""The estimators by name, and the ways a slot's loss difference may enter an ES/PES estimate."""

from __future__ import annotations

from lopt_trainer.meta.estimators.backprop import TruncatedBackprop
from lopt_trainer.meta.estimators.es import ES
from lopt_trainer.meta.estimators.hybrid import Hybrid
from lopt_trainer.meta.estimators.nres import NRES
from lopt_trainer.meta.estimators.pes import PES

__all__ = ["ESTIMATORS", "KINDS", "DIFFERENCES"]

ESTIMATORS = {"pes": PES(), "es": ES(), "backprop": TruncatedBackprop(), "hybrid": Hybrid(), "nres": NRES()}
"""The estimators by the name the ``estimator`` setting gives them."""
KINDS = tuple(ESTIMATORS)
DIFFERENCES = ("value", "sign")
"""How a slot's antithetic difference ``L+ − L−`` enters its ES/PES estimate: ``value``, the estimate
``A (L+ − L−) / (2σ²)``; ``sign``, only which particle did better, ``A sign(L+ − L−) / σ`` (VeLO's reduction, Metz
et al. 2022, arXiv 2211.09760: a task's scale and outliers no longer weigh; the estimate has expectation
``√(2/π)`` times the unit gradient direction for ES)."""

