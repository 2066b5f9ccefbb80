"""A workaround for XLA's CPU runtime: its concurrency-optimized scheduler can deadlock a program.

Seen here (jaxlib 0.10.2, 2-core x86-64): the AdamLR grid of the yardstick task ``mlp_ae-228154bb0c26`` (one
vmapped program over 14 learning rates × 3 seeds) stops at 0% CPU in its first evaluation, every XLA worker
thread parked and the main thread waiting for the result in ``BlockUntilReady``, every time; 12 × 3 runs finish.
With ``--xla_cpu_enable_concurrency_optimized_scheduler=false`` the same program finishes every time (single- or
multi-threaded Eigen alike; ``--xla_cpu_multi_thread_eigen=false`` alone does not help).

:func:`apply` adds that flag to ``XLA_FLAGS`` when the process has not chosen a value for it itself, before JAX
starts its CPU backend (importing ``taskgen`` or a package built on it calls it). It changes how XLA orders a
program's operations on the CPU, not what they compute; set
``XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=true`` to keep XLA's default.
"""

from __future__ import annotations

import os

__all__ = ["FLAG", "apply"]

OPTION = "xla_cpu_enable_concurrency_optimized_scheduler"
FLAG = f"--{OPTION}=false"


def apply(environ=None) -> bool:
    """Add :data:`FLAG` to ``XLA_FLAGS`` in ``environ`` (``os.environ``) unless it sets the option already;
    returns whether it was added."""
    env = os.environ if environ is None else environ
    flags = env.get("XLA_FLAGS", "")
    if OPTION in flags:
        return False
    env["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
    return True
