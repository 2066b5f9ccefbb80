"""The one grammar for naming a θ, without JAX: what every ``--theta`` option and
:func:`lopt_trainer.theta.load.load_theta` take.

A θ is named by

* a reference-layout ``.npz`` file (``RUN/theta.npz``, ``RUN/best_theta.npz``, an export, the reference's own);
* a meta-training run folder (its latest checkpoint);
* a checkpoint file (``RUN/checkpoint.msgpack``);
* ``pretrained`` (the θ shipped with the package), ``handset`` (the untrained hand-set rule) or ``random`` (the
  untrained random θ, seed 0).

A file or folder of one of these names in the current folder wins over the name. This module only checks that a
value names something (the command line's check, before any work); reading and checking θ is
:func:`~lopt_trainer.theta.load.load_theta`'s job.
"""

from __future__ import annotations

import os
from pathlib import Path

PRETRAINED = "pretrained"
UNTRAINED_THETAS = ("handset", "random")
"""Names of the untrained θ: the hand-set rule (:func:`lopt_trainer.optimizer.hierarchical.init_handset`) and the
random init (:func:`lopt_trainer.optimizer.hierarchical.init`), both from seed 0."""
THETA_NAMES = (PRETRAINED, *UNTRAINED_THETAS)
"""Every name a θ goes by besides a path."""

RUN_THETA_FILES = ("checkpoint.msgpack", "checkpoint.prev.msgpack")
"""The files of a run folder that hold its θ (the current checkpoint and the one before; a test checks they
agree with :mod:`lopt_trainer.common.checkpoint`)."""

THETA_GRAMMAR = ("a reference-layout .npz file, a meta-training run folder, a checkpoint file (.msgpack), "
                 "'pretrained' (the shipped θ), 'handset' (untrained hand-set rule) or 'random' (untrained, seed 0)")
"""How the help texts and errors describe what names a θ."""


def is_theta_name(value) -> bool:
    """Whether ``value`` is one of :data:`THETA_NAMES` and no file or folder of that name shadows it."""
    return str(value) in THETA_NAMES and not Path(str(value)).exists()


def theta_problem(value) -> str | None:
    """Why ``value`` names no θ (``None`` when it names one): a missing path, or a folder without a checkpoint."""
    if is_theta_name(value):
        return None
    path = Path(os.path.expanduser(str(value)))
    if not path.exists():
        return f"{value!r} is neither a file, a folder nor a θ name"
    if path.is_dir() and not any((path / name).is_file() for name in RUN_THETA_FILES):
        return f"folder {value!r} holds no meta-training checkpoint ({RUN_THETA_FILES[0]})"
    return None


def theta_label(value) -> str:
    """How result files record a θ: its name, or the absolute path of the file or folder."""
    return str(value) if is_theta_name(value) else os.path.abspath(os.path.expanduser(str(value)))
