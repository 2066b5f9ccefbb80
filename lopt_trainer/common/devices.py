"""Spreading a batch of independent runs over this process's devices with JAX's sharding.

A vmapped program over ``B`` independent rows (hyperparameter trials × seeds, θ × seeds) runs on every local
device at once when its row-indexed inputs are placed with a :class:`jax.sharding.NamedSharding` that splits the
leading axis over a one-axis mesh (``batch``): XLA partitions the program, each device computes its rows, and
inputs without a row axis (the task's data) are replicated. The rows are padded to a multiple of the device count
with copies of the first row, whose results are dropped. With one device nothing changes: no mesh, no padding.

Which devices: all of ``jax.local_devices()``; to use fewer, hide the others from JAX (``CUDA_VISIBLE_DEVICES``)
or, on the CPU, set ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` to split the host into ``N`` devices.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["row_sharding", "padded_rows", "pad_rows", "place_rows", "sharding_key"]

AXIS = "batch"
"""The mesh axis the rows are split over."""


def row_sharding(devices=None) -> NamedSharding | None:
    """The sharding that splits an array's leading axis over ``devices``, or None for a single device.

    Args:
      devices: the devices to use (default: ``jax.local_devices()``).

    Returns:
      A :class:`~jax.sharding.NamedSharding` over a one-axis mesh, or None when there is one device.
    """
    devices = list(devices if devices is not None else jax.local_devices())
    if len(devices) < 2:
        return None
    return NamedSharding(Mesh(np.asarray(devices), (AXIS,)), PartitionSpec(AXIS))


def padded_rows(rows: int, sharding: NamedSharding | None) -> int:
    """``rows`` rounded up to a multiple of the sharding's device count (``rows`` itself without a sharding)."""
    if sharding is None:
        return int(rows)
    d = len(sharding.device_set)
    return -(-int(rows) // d) * d


def pad_rows(tree, rows: int):
    """Every leaf of ``tree`` (leading axis = rows) extended to ``rows`` rows with copies of its first row.

    Args:
      tree: a pytree of arrays sharing their leading dimension.
      rows: the wanted number of rows (at least the present one).

    Returns:
      The padded tree (NumPy or JAX arrays, as given).

    Raises:
      ValueError: ``rows`` is below the present number of rows.
    """
    def pad(x):
        extra = int(rows) - int(np.shape(x)[0])
        if extra < 0:
            raise ValueError(f"cannot pad {np.shape(x)[0]} rows to {rows}")
        if extra == 0:
            return x
        first = x[:1]
        lib = np if isinstance(x, np.ndarray) else jax.numpy
        return lib.concatenate([x, lib.repeat(first, extra, axis=0)], axis=0)

    return jax.tree_util.tree_map(pad, tree)


def place_rows(tree, sharding: NamedSharding | None):
    """``tree`` placed with its leading axis split by ``sharding`` (unchanged when it is None)."""
    return tree if sharding is None else jax.device_put(tree, sharding)


def sharding_key(x):
    """A hashable key of where an argument lives, for caches of compiled programs: its sharding when it spans
    several devices, else None (NumPy arrays, shape structs without a sharding and single-device arrays alike)."""
    sharding = getattr(x, "sharding", None)
    if sharding is None or len(getattr(sharding, "device_set", ())) < 2:
        return None
    return sharding
