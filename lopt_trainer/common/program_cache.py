"""A bounded, thread-safe cache of compiled XLA programs, keyed by a name and the shapes of the arguments.

The inner loop and meta-training compile ahead of time (``jit(...).lower(args).compile()``) so that compile time
is measured apart from run time, and keep the executables here. A program can also be compiled in a background
thread (:meth:`ProgramCache.prefetch`) while the caller compiles or runs something else: XLA compiles without
the GIL, so on a multi-core machine independent compiles overlap.

The cache is an LRU with two limits: a number of programs, and a budget of memory mappings shared by every
cache of the process. Every program holds memory mappings of generated code — about 1,000 for a PES estimator,
2,500 for a truncated-backprop one — and a long job that visits many task shapes would otherwise run into the
kernel's limit (``vm.max_map_count``, 65,530 by default: LLVM then fails with "Cannot allocate memory" and the
process dies). Each program's mappings are measured when it is compiled (``/proc/self/maps`` before and after);
when the process's programs together pass :data:`MAP_BUDGET`, least recently used ones are dropped. An evicted
program that comes back is recompiled, or reloaded from the persistent compilation cache when that is on.
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np

from lopt_trainer.common.devices import sharding_key

_BACKGROUND = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="xla-compile")


def _max_map_count() -> int:
    try:
        return int(open("/proc/sys/vm/max_map_count").read())
    except (OSError, ValueError):  # not Linux: no such limit to respect
        return 1 << 30


def map_count() -> int:
    """Memory mappings this process holds now (0 where ``/proc/self/maps`` does not exist)."""
    try:
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


MAP_BUDGET = int(0.6 * _max_map_count())
"""Memory mappings all cached programs of the process may hold together (60% of the kernel's limit; the rest is
left to the interpreter, libraries, data and programs outside the caches)."""
MIN_PROGRAM_MAPS = 100
"""The weight of a program whose compile measured fewer mappings (a concurrent compile or free can hide some)."""
_CACHES: "list[ProgramCache]" = []


def shape_signature(args) -> tuple:
    """A hashable key of a pytree's structure and its leaves' shapes, dtypes, weak types and multi-device
    shardings (:func:`~lopt_trainer.common.devices.sharding_key`: a program compiled for rows split over devices
    is another program).

    Leaves may be arrays, ``jax.ShapeDtypeStruct`` or Python scalars.
    """
    leaves, treedef = jax.tree_util.tree_flatten(args)

    def leaf(x):
        shape, dtype, weak = _shape_dtype(x)
        return shape, np.dtype(dtype).name, weak, sharding_key(x)

    return treedef, tuple(leaf(x) for x in leaves)


def _shape_dtype(x) -> tuple:
    """``(shape, dtype, weak type)`` of an array, a ``jax.ShapeDtypeStruct`` or a Python scalar."""
    shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", None)
    if shape is None or dtype is None:
        shape, dtype = np.shape(x), jnp.result_type(x)
    return tuple(shape), dtype, bool(getattr(x, "weak_type", False))


def shapes_of(args):
    """``args`` as ``jax.ShapeDtypeStruct`` leaves (shape, dtype, weak type; no placement): a program's key for a
    cache whose programs fix their own placement (``jax.jit(..., in_shardings=...)``)."""
    def leaf(x):
        shape, dtype, weak = _shape_dtype(x)
        return jax.ShapeDtypeStruct(shape, dtype, weak_type=weak)

    return jax.tree_util.tree_map(leaf, args)


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
        _CACHES.append(self)

    @property
    def maps(self) -> int:
        """The memory mappings measured for the programs this cache holds."""
        with self._lock:
            return sum(entry[2] for entry in self._programs.values())

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
        """Queue a compile of ``key`` at ``args``' shapes on the background thread (no-op when cached or
        compiling). Background compiles run one at a time, in the order queued; a :meth:`get` of a program whose
        compile has not started yet takes it back and compiles it in the calling thread, so two compiles run at
        once."""
        sig = (key, shape_signature(args))
        with self._lock:
            if sig in self._programs or sig in self._in_flight:
                return
            self._in_flight[sig] = _BACKGROUND.submit(self._compile, sig, make_jitted, args)

    def cancel_pending(self) -> int:
        """Drop the queued background compiles that have not started (a run that ends does not wait for programs
        nobody will use); returns how many. One already compiling finishes."""
        with self._lock:
            dropped = [sig for sig, fut in self._in_flight.items() if fut.cancel()]
            for sig in dropped:
                self._in_flight.pop(sig, None)
        return len(dropped)

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
        if pending is not None and pending.cancel():
            # Still queued behind other background compiles: compile here instead, beside the one that runs.
            with self._lock:
                self._in_flight.pop(sig, None)
            pending = None
        exe = pending.result() if pending is not None else self._compile(sig, make_jitted, args)
        return exe, time.perf_counter() - t0

    def _compile(self, sig, make_jitted, args):
        try:
            before = map_count()
            exe = make_jitted().lower(*args).compile()
            weight = max(map_count() - before, MIN_PROGRAM_MAPS)
            with self._lock:
                # make_jitted is kept with the program: it holds the objects whose ids the key may use.
                self._programs[sig] = (exe, make_jitted, weight)
                while len(self._programs) > self.size:
                    self._programs.popitem(last=False)
            self._keep_within_map_budget()
            return exe
        finally:
            with self._lock:
                self._in_flight.pop(sig, None)

    def _keep_within_map_budget(self) -> None:
        """Drop this cache's least recently used programs while all caches together pass :data:`MAP_BUDGET`
        (the newest program always stays)."""
        while sum(c.maps for c in _CACHES) > MAP_BUDGET:
            with self._lock:
                if len(self._programs) <= 1:
                    return
                self._programs.popitem(last=False)
