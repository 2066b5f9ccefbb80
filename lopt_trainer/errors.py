"""The learned-optimizer side's own error types (messages read ``<what> <path>: <reason>``).

All subclass ``ValueError`` so existing ``except ValueError`` callers keep working; the command line's error
boundary prints them as one ``Error: ...`` line.
"""

from __future__ import annotations


class LOptError(ValueError):
    """Base of the errors of ``lopt_trainer`` that a user can fix (a file, a setting, a run folder)."""


class ThetaFileError(LOptError):
    """A file holding θ is damaged, holds non-finite values, or does not fit the optimizer's config."""


class CheckpointError(LOptError):
    """A meta-training checkpoint is damaged or was written by another format."""


class PretrainStateError(CheckpointError):
    """A portable pretraining state directory (:mod:`lopt_trainer.meta.portable`) has a missing or damaged file."""


class ResumeError(LOptError):
    """``--resume`` was asked for with a task list or settings other than the run's."""


class FolderInUseError(LOptError):
    """Another process holds the lock of a run or evaluation folder (:mod:`lopt_trainer.common.folder_lock`)."""


class RunExistsError(LOptError):
    """A folder already holds a finished or interrupted run, and neither resume nor overwrite was asked for."""


class WorkersFailedError(LOptError):
    """Every gradient worker of an outer step failed, on fresh workers too (:mod:`lopt_trainer.meta.outer`)."""
