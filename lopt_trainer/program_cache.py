"""A bounded, thread-safe cache of compiled XLA programs, keyed by a name and the shapes of the arguments.

The inner loop and the meta-training estimators compile ahead of time (``jit(...).lower(args).compile()``) so
that compile time is measured apart from run time, and keep the executables here. The cache is an LRU with a
size limit: every program holds hundreds of memory mappings of generated code, and a long job that visits
hundreds of task shapes would otherwise run into the kernel's limit (65,530 mappings: LLVM then fails with
"Cannot allocate memory"). An evicted program that comes back is recompiled, or reloaded from the persistent
compilation cache when that is on.
"""

from __future__ import annotations

import collections
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np


def shape_signature(args) -> tuple:
    """A hashable key of a pytree's structure and its leaves' shapes, dtypes and weak types.

    Leaves may be arrays, ``jax.ShapeDtypeStruct`` or Python scalars.
    """
    leaves, treedef = jax.tree_util.tree_flatten(args)

    def leaf(x):
        shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", None)
        if shape is None or dtype is None:
            shape, dtype = np.shape(x), jnp.result_type(x)
        return tuple(shape), np.dtype(dtype).name, bool(getattr(x, "weak_type", False))

    return treedef, tuple(leaf(x) for x in leaves)


class ProgramCache:
    """At most ``size`` compiled programs, least recently used out first."""

    def __init__(self, size: int):
        self.size = int(size)
        self._programs: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._programs)

    def clear(self) -> None:
        """Forget every program (the on-disk compilation cache is untouched)."""
        with self._lock:
            self._programs.clear()

    def lookup(self, key, args):
        """The cached executable for ``key`` at ``args``' shapes, or None."""
        sig = (key, shape_signature(args))
        with self._lock:
            hit = self._programs.get(sig)
            if hit is None:
                return None
            self._programs.move_to_end(sig)
            return hit[0]

    def get(self, key, make_jitted, args):
        """``(executable, seconds spent compiling it now)`` for ``key`` at ``args``' shapes (0 s when cached).

        ``key`` names the program: everything ``make_jitted()`` (which returns a ``jax.jit``-wrapped function)
        closes over that is not an argument. ``args`` may hold arrays or ``jax.ShapeDtypeStruct``.
        """
        exe = self.lookup(key, args)
        if exe is not None:
            return exe, 0.0
        t0 = time.perf_counter()
        jitted = make_jitted()
        exe = jitted.lower(*args).compile()
        with self._lock:
            # make_jitted is kept with the program: it holds the objects whose ids the key may use.
            self._programs[(key, shape_signature(args))] = (exe, make_jitted)
            while len(self._programs) > self.size:
                self._programs.popitem(last=False)
        return exe, time.perf_counter() - t0
