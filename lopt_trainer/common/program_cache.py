"""A bounded, thread-safe cache of compiled XLA programs, keyed by a name and the shapes of the arguments.

The inner loop and meta-training compile ahead of time (``jit(...).lower(args).compile()``) so that compile time
is measured apart from run time, and keep the executables here. A program can also be compiled in a background
thread (:meth:`ProgramCache.prefetch`) while the caller compiles or runs something else: XLA compiles without
the GIL, so on a multi-core machine independent compiles overlap.

The cache is an LRU with a size limit: every program holds hundreds of memory mappings of generated code, and a
long job that visits hundreds of task shapes would otherwise run into the kernel's limit (65,530 mappings: LLVM
then fails with "Cannot allocate memory"). An evicted program that comes back is recompiled, or reloaded from
the persistent compilation cache when that is on.
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np

_BACKGROUND = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="xla-compile")


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
    """At most ``size`` compiled programs, least recently used out first.

    A program is named by ``key`` (everything ``make_jitted()``, which returns a ``jax.jit``-wrapped function,
    closes over that is not an argument) and completed by the shapes and dtypes of its arguments (arrays or
    ``jax.ShapeDtypeStruct``).
    """

    def __init__(self, size: int):
        self.size = int(size)
        self._programs: collections.OrderedDict = collections.OrderedDict()
        self._in_flight: dict = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._programs)

    def clear(self) -> None:
        """Forget every program (the on-disk compilation cache is untouched)."""
        with self._lock:
            self._programs.clear()

    def lookup(self, key, args):
        """The cached executable for ``key`` at ``args``' shapes, or None (also while it is still compiling)."""
        sig = (key, shape_signature(args))
        with self._lock:
            hit = self._programs.get(sig)
            if hit is None:
                return None
            self._programs.move_to_end(sig)
            return hit[0]

    def prefetch(self, key, make_jitted, args) -> None:
        """Start compiling ``key`` at ``args``' shapes in a background thread (no-op when cached or compiling)."""
        sig = (key, shape_signature(args))
        with self._lock:
            if sig in self._programs or sig in self._in_flight:
                return
            self._in_flight[sig] = _BACKGROUND.submit(self._compile, sig, make_jitted, args)

    def get(self, key, make_jitted, args):
        """``(executable, seconds this call spent compiling or waiting for a background compile)``."""
        sig = (key, shape_signature(args))
        with self._lock:
            hit = self._programs.get(sig)
            if hit is not None:
                self._programs.move_to_end(sig)
                return hit[0], 0.0
            pending = self._in_flight.get(sig)
        t0 = time.perf_counter()
        exe = pending.result() if pending is not None else self._compile(sig, make_jitted, args)
        return exe, time.perf_counter() - t0

    def _compile(self, sig, make_jitted, args):
        try:
            exe = make_jitted().lower(*args).compile()
            with self._lock:
                # make_jitted is kept with the program: it holds the objects whose ids the key may use.
                self._programs[sig] = (exe, make_jitted)
                while len(self._programs) > self.size:
                    self._programs.popitem(last=False)
            return exe
        finally:
            with self._lock:
                self._in_flight.pop(sig, None)
