"""Modules imported on first use, so that importing a family (to list, sample, validate or cost its configs) does
not import jax, flax, optax or numpy; only building a task does."""

from __future__ import annotations

import importlib


class LazyModule:
    """Stands for the module ``name``; imports it at the first attribute access and forwards to it."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr):
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self):
        return f"<lazy module {self._name!r}>"


jax = LazyModule("jax")
jnp = LazyModule("jax.numpy")
np = LazyModule("numpy")
optax = LazyModule("optax")
nn = LazyModule("flax.linen")


def lazy_jit(fn):
    """``jax.jit(fn)``, made at the first call (a module-level ``@jax.jit`` would import jax with the module)."""
    import functools

    compiled = None

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        nonlocal compiled
        if compiled is None:
            compiled = jax.jit(fn)
        return compiled(*args, **kwargs)

    return wrapper
