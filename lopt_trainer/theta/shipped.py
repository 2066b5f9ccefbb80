"""The pretrained learned optimizer shipped with the package, and the recipe it was made with.

``lopt_trainer/data/pretrained_theta.npz`` holds θ in the reference layout (see
:mod:`lopt_trainer.theta.reference_io`); ``pretrained_recipe.json`` holds the meta-training config
(``pretrain_config.json``: suite, filters, estimator, seed) and the number of outer steps actually run.
``make pretrain`` remakes both in a checkout: meta-train with that config for that many steps, then export the
panel-best θ as a candidate, which ``make ship`` (the release gate, ``research/ship.py``) copies here only if it
wins on the yardstick's test set.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from lopt_trainer.theta.reference_io import load_reference_npz

THETA_FILE = "pretrained_theta.npz"
RECIPE_FILE = "pretrained_recipe.json"


def data_path(name: str = "") -> Path:
    """The path of ``name`` in the package's data folder (``lopt_trainer/data/``)."""
    return Path(str(resources.files("lopt_trainer") / "data" / name))


def pretrained_path() -> Path:
    """Path of the shipped θ (``.npz``, reference layout); ``FileNotFoundError`` if the install lacks it."""
    path = data_path(THETA_FILE)
    if not path.exists():
        raise FileNotFoundError(f"no pretrained θ at {path}; run `make pretrain` to make one")
    return path


def pretrained():
    """The shipped meta-parameters θ (a pytree of jnp arrays for :mod:`lopt_trainer.optimizer.hierarchical`)."""
    return load_reference_npz(pretrained_path())


def pretrained_recipe() -> dict:
    """The recipe the shipped θ was made with (config, suite, steps run, seed, meta-loss history summary)."""
    return json.loads(data_path(RECIPE_FILE).read_text())
