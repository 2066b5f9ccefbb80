"""One process per output folder: an exclusive lock on ``FOLDER/.lock`` held while a run writes there.

Every command that writes a run folder (meta-training, evaluations, the panel, the experiments) holds
:func:`folder_lock` on it for as long as it writes. The lock is a non-blocking exclusive ``flock`` on
``FOLDER/.lock``; the file holds the holder's pid, host, command line and start time, so a second process is
refused at once with one line naming the holder (:class:`~lopt_trainer.errors.FolderInUseError`). The kernel
releases a ``flock`` when its process ends, however it ends, so a crashed run never leaves a stale lock (the
file stays, unlocked; it is never deleted, which would let two processes lock two different files). The file
descriptor is not inherited by child processes (Python opens files non-inheritable), so a Ray worker cannot keep
a lock alive after its run.

The lock is re-entrant within a process: a command may hold it around its own bookkeeping (``command.json``)
and call a library function that takes it again. Where ``fcntl`` is missing (not POSIX) or the file system does
not support ``flock``, the folder is used unlocked, with a warning.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import shlex
import socket
import threading
import warnings
from pathlib import Path

from lopt_trainer.common.run_files import invocation
from lopt_trainer.errors import FolderInUseError

try:
    import fcntl
except ImportError:  # not POSIX: folders are used unlocked (see the module docstring)
    fcntl = None

LOCK_FILE = ".lock"
"""Name of the lock file inside a locked folder."""

_held: dict[str, list] = {}  # resolved folder -> [open file, depth] of the locks this process holds
_guard = threading.Lock()


@contextlib.contextmanager
def folder_lock(folder, what: str = "run folder"):
    """Hold the exclusive lock of ``folder`` (created if missing) for the block.

    ``what`` names the folder in the error (``"run folder"``, ``"evaluation folder"``). Raises
    :class:`~lopt_trainer.errors.FolderInUseError` at once when another process holds it. Re-entrant within a
    process."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = str(folder.resolve())
    with _guard:
        if key in _held:
            _held[key][1] += 1
        else:
            _held[key] = [_acquire(folder, what), 1]
    try:
        yield folder
    finally:
        with _guard:
            entry = _held[key]
            entry[1] -= 1
            if entry[1] == 0:
                del _held[key]
                _release(entry[0])


def holder(folder) -> dict | None:
    """What ``FOLDER/.lock`` says about its holder (``pid``, ``host``, ``command``, ``since``), or None when it
    says nothing readable. The file describes the last holder; only a failed lock attempt proves it is alive."""
    try:
        data = json.loads((Path(folder) / LOCK_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _acquire(folder: Path, what: str):
    """The open lock file of ``folder``, locked; raises :class:`FolderInUseError` when another process has it."""
    if fcntl is None:
        return None
    path = folder / LOCK_FILE
    f = open(path, "a+")  # never truncated before the lock is ours: the holder's record stays readable
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        f.close()
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise FolderInUseError(f"{what} {folder} is in use by {_describe(holder(folder))}; wait for it to "
                                   "end or choose another folder") from None
        warnings.warn(f"cannot lock {path} ({e.strerror or e}); using {folder} without a lock", RuntimeWarning,
                      stacklevel=4)
        return None
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": shlex.join(invocation()),
              "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    f.seek(0)
    f.truncate()
    f.write(json.dumps(record, sort_keys=True) + "\n")
    f.flush()
    return f


def _release(f) -> None:
    """Unlock and close (the record stays: it names the last holder, for a reader who finds the lock taken)."""
    if f is None:
        return
    try:
        fcntl.flock(f, fcntl.LOCK_UN)
    finally:
        f.close()


def _describe(record: dict | None) -> str:
    """``another process (pid 12, host h, since T: taskgen lopt …)`` from a lock file's record."""
    if not record:
        return "another process"
    return (f"another process (pid {record.get('pid')} on {record.get('host')}, since {record.get('since')}: "
            f"{record.get('command')})")
