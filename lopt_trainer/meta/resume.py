"""What ``--resume`` may and may not change, and the check that a run's task list is still the same.

A resumed run continues from its checkpoint with the settings stored there. Settings fall in three kinds:

* :data:`FREE` (``steps``, ``workers``, ``address``, ``pin_workers``, ``prefetch_steps``): where, how fast and how
  long the run goes; always taken from the command line.
* :data:`SAFE` (``checkpoint_every``, ``eval_every``, ``eval_tasks``, ``eval_steps``, ``panel_every``, ``panel``,
  ``compilation_cache``, ``plugins``): logging, evaluation and caching; they do not change what the
  meta-gradient estimates, so they may change mid-run when the caller allows it (``--allow-change``).
* every other setting (estimator, sigma, truncation, horizons, task selection, outer optimizer, seed, θ sizes,
  ...): changing it mid-run would make the resumed run another experiment; refused, listing each difference.
  The settings of :data:`TASK_SELECTION` (``filters``, the cost limits ``max_params`` / ``max_flops`` /
  ``family_limits``, the spec source) choose the training task list: the refusal says that the change is one of
  the task list.

The training task list is stored as a digest in the checkpoint (:func:`task_digest`); a spec file or manifest
replaced at the same path is refused on resume (:func:`check_tasks`) instead of failing deep in the sampler.
"""

from __future__ import annotations

import dataclasses
import hashlib

from lopt_trainer.errors import ResumeError
from lopt_trainer.meta.config import MetaTrainConfig

def _of_kind(kind: str) -> tuple:
    return tuple(f.name for f in dataclasses.fields(MetaTrainConfig) if f.metadata["resume"] == kind)


FREE = _of_kind("free")
"""Taken from the command line on resume (each field's ``resume``, :data:`~lopt_trainer.meta.config.RESUME_KINDS`)."""
TASK_SELECTION = _of_kind("tasks")
"""The settings that choose a run's training tasks: changing one changes the task list (never allowed mid-run)."""
SAFE = _of_kind("safe")
"""May change on resume with ``allow_change``."""


def task_digest(specs) -> str:
    """SHA-256 (hex) of the sorted task ids of ``specs`` (order-free: the sampler sorts them itself)."""
    text = "\n".join(sorted(s.task_id for s in specs))
    return hashlib.sha256(text.encode()).hexdigest()


def resolve_resumed_config(stored, given, run_dir, given_keys=None, allow_change: bool = False, *,
                           what: str | None = None, restart_hint: str | None = None):
    """The config a resumed run continues with.

    ``stored``: the config in the checkpoint; ``given``: the caller's; ``given_keys``: the names the caller set
    explicitly (None = every field, as in Python use). :data:`FREE` settings come from ``given``; others that
    differ raise :class:`ResumeError` listing each with its stored and given value (and, for
    :data:`TASK_SELECTION` settings, that the task list would change), unless all differing ones are
    :data:`SAFE` and ``allow_change`` is true (then they come from ``given``). ``what`` names the source of
    ``stored`` in the message (default ``run RUN_DIR``), ``restart_hint`` what to do instead (default: a new run
    warm-started with ``--init-theta RUN_DIR``).
    """
    names = [f.name for f in dataclasses.fields(stored)]
    keys = names if given_keys is None else [k for k in names if k in set(given_keys)]
    diffs = [k for k in keys if k not in FREE and getattr(stored, k) != getattr(given, k)]
    if diffs and (not allow_change or any(k not in SAFE for k in diffs)):
        listed = "; ".join(f"{k}: stored {getattr(stored, k)!r}, given {getattr(given, k)!r}" for k in diffs)
        unsafe = [k for k in diffs if k not in SAFE]
        restart = restart_hint or (f"start a new run (warm-started from this one with --init-theta {run_dir} if "
                                   "you like)")
        if unsafe:
            tasks = [k for k in unsafe if k in TASK_SELECTION]
            change = f" ({', '.join(tasks)}: a change of the training task list)" if tasks else ""
            hint = f"{', '.join(unsafe)} cannot change mid-run{change}; {restart} or drop these settings"
        else:
            hint = "pass --allow-change to change them (safe mid-run: " + ", ".join(SAFE) + ")"
        raise ResumeError(f"{what or f'run {run_dir}'}: --resume with settings other than the run's ({listed}); "
                          f"{hint}")
    changes = {k: getattr(given, k) for k in (*FREE, *diffs)}
    return dataclasses.replace(stored, **changes)


def check_tasks(raw: dict, specs, run_dir, source, what: str | None = None) -> None:
    """Raise :class:`ResumeError` when ``specs`` (the run's training tasks as loaded now from ``source``, a spec
    file or manifest) differ from those in the checkpoint payload ``raw``; checkpoints without a digest (older
    runs) are not checked. ``what`` names the checkpoint's source in the message (default ``run RUN_DIR``)."""
    stored = raw.get("tasks_digest") or ""
    if stored and stored != task_digest(specs):
        raise ResumeError(
            f"{what or f'run {run_dir}'}: its task list changed since the checkpoint: {source} now selects other training tasks "
            f"({len(specs)} now, {int(raw.get('tasks_count', 0))} in the checkpoint); restore the file the run was "
            f"made with, or start a new run on the new list (warm-started with --init-theta {run_dir} if you "
            "like)")
