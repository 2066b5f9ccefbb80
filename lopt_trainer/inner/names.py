"""The names of the optimizers the toolkit runs, in one place (no JAX here: the command line reads them at
start-up).

* :data:`BASELINES` — the baselines of :mod:`lopt_trainer.inner.baselines`: plain Adam at one learning rate,
  then the three tuned families an evaluation compares against (:data:`EVAL_BASELINES`).
* :data:`LOPT` — the learned optimizer, as it is named in result files and on the command line.
"""

BASELINES = ("adam", "adamlr", "adam8p", "opt_list")
EVAL_BASELINES = BASELINES[1:]
LOPT = "lopt"
OPTIMIZERS = (*BASELINES, LOPT)
"""Everything ``taskgen train --optimizer`` accepts."""
