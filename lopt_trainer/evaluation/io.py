"""Small file helpers of the evaluation and experiments: atomic JSON, θ loading and hashing, command records."""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import shlex
import sys
from pathlib import Path

COMMAND_FILE = "command.json"
"""Name of the file in which each step records the command line that produced its folder."""


def clean_json(value):
    """``value`` with NaN/±Inf floats replaced by None and numpy scalars/arrays turned into Python values."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return clean_json(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    return value


def write_json(path, value, indent: int | None = 1) -> Path:
    """Write ``value`` (cleaned by :func:`clean_json`) as sorted-key JSON to ``path`` atomically."""
    from taskgen.specfile import atomic_write_bytes

    path = Path(path)
    text = json.dumps(clean_json(value), sort_keys=True, indent=indent, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode())
    return path


def read_json(path, default=None):
    """The JSON value in ``path``, or ``default`` when the file is missing or unreadable (e.g. torn)."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return default


def load_theta(path):
    """θ from a reference-layout ``.npz`` or a meta-training run folder / checkpoint (no pickle)."""
    from lopt_trainer.meta.trainer import load_theta as _load

    return _load(path)


def theta_digest(theta) -> str:
    """sha256 (first 16 hex digits) of θ's leaves in tree order: identifies a θ in result files."""
    import jax
    import numpy as np

    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(jax.device_get(theta)):
        arr = np.asarray(leaf, np.float32)
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


def _invocation() -> list[str]:
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
    argv = list(_invocation() if argv is None else argv)
    record = {"argv": argv, "command": shlex.join(argv), "cwd": os.getcwd(),
              "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              **(extra or {})}
    return write_json(Path(out_dir) / COMMAND_FILE, record)
