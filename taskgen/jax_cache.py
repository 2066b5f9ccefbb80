"""Persistent JAX compilation cache (compile time is a first-class cost with thousands of task shapes)."""

from __future__ import annotations

import os
import pathlib
import tempfile
import warnings

DEFAULT_CACHE_DIR = "~/.cache/taskgen/jax"
"""Used when neither an explicit directory nor ``$TASKGEN_JAX_CACHE`` is given."""

_enabled: str | None = None
_warned: set[str] = set()


def directory_problem(path: str) -> str | None:
    """None when ``path`` is (or can be made) a writable directory, else the reason it cannot (also used for the
    other optional directories of the toolkit, e.g. Ray's session directory)."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        return e.strerror or str(e)
    if not os.access(path, os.W_OK | os.X_OK):
        return "not writable"
    try:  # os.access says yes for root on a read-only mount; a real write says the truth
        fd, probe = tempfile.mkstemp(dir=path, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return e.strerror or str(e)
    return None


def enable_compilation_cache(cache_dir: str | os.PathLike | None = None,
                             min_compile_time_s: float = 0.2) -> str | None:
    """Turn on JAX's persistent compilation cache in ``cache_dir``.

    ``cache_dir`` defaults to ``$TASKGEN_JAX_CACHE`` or ``~/.cache/taskgen/jax``; it is created if missing.
    Programs that take at least ``min_compile_time_s`` to compile are stored. Idempotent (a second call with a
    different directory switches to it). Returns the directory used, as an absolute path string, or None when
    the directory cannot be used (a regular file, a read-only parent, ...): the cache only saves time, so that
    costs a warning (once per directory) and the run goes on without it.
    """
    global _enabled
    import jax

    path = cache_dir or os.environ.get("TASKGEN_JAX_CACHE") or DEFAULT_CACHE_DIR
    path = str(pathlib.Path(path).expanduser().resolve())
    if _enabled == path:
        return path
    reason = directory_problem(path)
    if reason is not None:
        if path not in _warned:
            _warned.add(path)
            warnings.warn(f"compilation cache {path}: {reason}; running without it (compiles are not kept; set "
                          "TASKGEN_JAX_CACHE to a writable directory)", RuntimeWarning, stacklevel=2)
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
    try:  # the cache object is created at the first compile; make a later directory change take effect
        from jax.experimental.compilation_cache import compilation_cache as _cc

        _cc.reset_cache()
    except Exception:  # pragma: no cover - private API moved; the config update above still applies
        pass
    _enabled = path
    return path
