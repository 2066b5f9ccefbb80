"""What machine a figure was measured on: the CPU model and a short description."""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["cpu_model", "machine"]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`, else "unknown")."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine() -> dict:
    """``{"cpu", "cpus", "platform", "python", "jax", "backend", "device"}`` of this process."""
    import jax  # deferred: callers that only need the CPU model do not import JAX

    return {"cpu": cpu_model(), "cpus": os.cpu_count() or 1, "platform": platform.platform(),
            "python": platform.python_version(), "jax": jax.__version__, "backend": jax.default_backend(),
            "device": str(jax.devices()[0].device_kind)}
