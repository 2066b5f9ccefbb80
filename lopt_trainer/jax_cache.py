"""Persistent JAX compilation cache (compile time is a first-class cost with thousands of task shapes)."""

from __future__ import annotations

import os
import pathlib

DEFAULT_CACHE_DIR = "~/.cache/taskgen/jax"
"""Used when neither an explicit directory nor ``$TASKGEN_JAX_CACHE`` is given."""

_enabled: str | None = None


def enable_compilation_cache(cache_dir: str | os.PathLike | None = None, min_compile_time_s: float = 0.2) -> str:
    """Turn on JAX's persistent compilation cache in ``cache_dir``.

    ``cache_dir`` defaults to ``$TASKGEN_JAX_CACHE`` or ``~/.cache/taskgen/jax``; it is created if missing.
    Programs that take at least ``min_compile_time_s`` to compile are stored. Idempotent (a second call with a
    different directory switches to it). Returns the directory used, as an absolute path string.
    """
    global _enabled
    import jax

    path = cache_dir or os.environ.get("TASKGEN_JAX_CACHE") or DEFAULT_CACHE_DIR
    path = str(pathlib.Path(path).expanduser().resolve())
    if _enabled == path:
        return path
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
    try:  # the cache object is created at the first compile; make a later directory change take effect
        from jax.experimental.compilation_cache import compilation_cache as _cc

        _cc.reset_cache()
    except Exception:  # pragma: no cover - private API moved; the config update above still applies
        pass
    _enabled = path
    return path
