"""The files every step of the toolkit writes: JSON values (atomically, NaN/±Inf as null) and ``command.json``.

One cleaner (:func:`clean_json`) turns results into JSON values, and one writer (:func:`write_json`) writes them
with sorted keys through :func:`taskgen.specfile.atomic_write_bytes`, so an interrupted job never leaves a torn
file. Each folder a command makes records the command line that made it in ``command.json``
(:func:`write_command`), which the report shows. :func:`remove_files` clears a run's own files for
``--overwrite``.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np

from taskgen.specfile import atomic_write_bytes

COMMAND_FILE = "command.json"
"""Name of the file in which each step records the command line that produced its folder."""


def clean_json(value, max_array: int | None = None):
    """``value`` as plain JSON values: NaN/±Inf floats become None; NumPy/JAX scalars and arrays become Python
    numbers and lists (an array of more than ``max_array`` elements becomes the text ``"<array SHAPE>"``; None =
    no limit); dict keys become strings; tuples become lists; anything else is returned unchanged."""
    if isinstance(value, dict):
        return {str(k): clean_json(v, max_array) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v, max_array) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if hasattr(value, "__array__") and hasattr(value, "shape"):  # np.ndarray, jax.Array
        if max_array is not None and np.size(value) > max_array:
            return f"<array {tuple(np.shape(value))}>"
        return clean_json(np.asarray(value).tolist(), max_array)
    return value


def json_text(value, indent: int | None = 1) -> str:
    """The canonical text of a JSON file of the toolkit: :func:`clean_json` of ``value``, sorted keys, the given
    indent, a final newline."""
    return json.dumps(clean_json(value), sort_keys=True, indent=indent, allow_nan=False) + "\n"


def write_json(path, value, indent: int | None = 1) -> Path:
    """Write :func:`json_text` of ``value`` to ``path`` atomically; returns the path."""
    path = Path(path)
    atomic_write_bytes(path, json_text(value, indent).encode())
    return path


STAGING_SUFFIX = ".staged"
"""The suffix of the files :func:`write_files_together` writes before it renames them into place."""


def write_files_together(folder, files: dict) -> list[Path]:
    """Write ``files`` (name → bytes) into ``folder`` so that they change together: every file is first written
    in full beside its target (``NAME.staged``, atomically); only when all are on disk are they renamed into
    place, which needs no space. A failure while writing (a full disk, no permission) removes the staged files
    and leaves the old ones as they were; returns the paths written."""
    folder = Path(folder)
    staged = []
    try:
        for name, data in files.items():
            path = folder / (name + STAGING_SUFFIX)
            atomic_write_bytes(path, data)
            staged.append(path)
    except BaseException:
        for path in staged:
            path.unlink(missing_ok=True)
        raise
    out = []
    for path in staged:
        target = path.with_name(path.name[: -len(STAGING_SUFFIX)])
        os.replace(path, target)
        out.append(target)
    return out


def read_json(path, default=None):
    """The JSON value in ``path``, or ``default`` when the file is missing or unreadable (e.g. torn)."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return default


def jsonl_line(record: dict) -> str:
    """One line of a JSON Lines file of the toolkit: :func:`clean_json` of ``record``, sorted keys, newline."""
    return json.dumps(clean_json(record), sort_keys=True) + "\n"


def append_jsonl(path, record: dict) -> None:
    """Append :func:`jsonl_line` of ``record`` to ``path`` and flush."""
    with open(path, "a") as f:
        f.write(jsonl_line(record))


def invocation() -> list[str]:
    """This process's command line as the user typed it: ``taskgen …`` for the console script, ``PYTHON -m
    MODULE …`` for ``python -m`` (PYTHON relative to the working directory when inside it)."""
    argv = list(sys.argv)
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and getattr(spec, "name", None):
        exe = sys.executable
        if exe.startswith(os.getcwd() + os.sep):
            exe = os.path.relpath(exe)
        module = spec.name[: -len(".__main__")] if spec.name.endswith(".__main__") else spec.name
        return [exe, "-m", module, *argv[1:]]
    if argv and os.path.basename(argv[0]) == "taskgen":
        argv[0] = "taskgen"
    return argv


def write_command(out_dir, argv=None, extra: dict | None = None) -> Path:
    """Record the command line that produced ``out_dir`` in ``out_dir/command.json`` (argv, a shell-quoted
    string, working directory, UTC time, and ``extra``)."""
    argv = list(invocation() if argv is None else argv)
    record = {"argv": argv, "command": shlex.join(argv), "cwd": os.getcwd(),
              "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              **(extra or {})}
    return write_json(Path(out_dir) / COMMAND_FILE, record)


def remove_files(folder, names) -> list[str]:
    """Remove the files and folders ``names`` (a run's own outputs) from ``folder``, leaving anything else there;
    returns the names that were present."""
    removed = []
    for name in names:
        path = Path(folder) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(name)
    return removed
