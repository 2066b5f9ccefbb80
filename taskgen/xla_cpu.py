"""A workaround for XLA's CPU runtime: its multi-threaded Eigen pool can wedge on vmapped programs.

Seen here: an evaluation or baseline computation (one vmapped program over 14 learning rates × 3 seeds) stops at
0% CPU, every XLA worker thread parked in the Eigen pool's wait and the main thread waiting for the result buffer
in ``BlockUntilReady``, forever; twice in one 40-minute run. Others report the same wedge and the same cure
(PyAutoLabs/PyAutoFit#1530: ``--xla_cpu_multi_thread_eigen=false``, 0 hangs in 12 runs against 14 in 16).

:func:`apply` adds that flag to ``XLA_FLAGS`` when the process has not chosen a value for it itself, before JAX
starts its CPU backend (importing ``taskgen`` or ``lopt_trainer`` calls it). It affects the CPU backend only
(Eigen's intra-op threads; XLA still runs independent operations concurrently); set
``XLA_FLAGS=--xla_cpu_multi_thread_eigen=true`` to keep the multi-threaded pool.
"""

from __future__ import annotations

import os

__all__ = ["FLAG", "apply"]

FLAG = "--xla_cpu_multi_thread_eigen=false"


def apply(environ=None) -> bool:
    """Add :data:`FLAG` to ``XLA_FLAGS`` in ``environ`` (``os.environ``) unless it sets the option already;
    returns whether it was added."""
    env = os.environ if environ is None else environ
    flags = env.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" in flags:
        return False
    env["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
    return True
