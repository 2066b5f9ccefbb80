"""Checks of a θ read from a file: every array finite and, given a template, the template's sizes.

Used by every reader of θ (:func:`~lopt_trainer.theta.reference_io.load_reference_npz`, :func:`~lopt_trainer.theta.load.load_theta` and the warm start),
so a foreign or damaged file stops at load time with the file and the first bad array named, not as NaN
updates (or a broadcasting error) many steps later.
"""

from __future__ import annotations

import jax
import numpy as np

from lopt_trainer.errors import ThetaFileError


def array_name(path) -> str:
    """The ``/``-joined name of one array of θ from its pytree key path (e.g. ``"mlp/w0"``), as errors name it."""
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def array_shapes(theta) -> dict[str, tuple]:
    """``{array name: shape}`` of θ's arrays in tree order (leaves may be arrays or ``jax.ShapeDtypeStruct``)."""
    return {array_name(p): tuple(np.shape(x)) for p, x in jax.tree_util.tree_flatten_with_path(theta)[0]}


def first_non_finite(theta) -> tuple[str, int] | None:
    """``(array name, how many values)`` of the first array of θ (tree order) holding NaN or inf; None if none does."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(theta)[0]:
        arr = np.asarray(leaf)
        if np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
            return array_name(path), int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
    return None


def check_finite(theta, source) -> None:
    """Raise :class:`ThetaFileError` naming ``source`` and the first array (tree order) holding NaN or inf."""
    bad = first_non_finite(theta)
    if bad is not None:
        raise ThetaFileError(f"θ file {source}: array {bad[0]!r} holds {bad[1]} non-finite value(s) "
                             "(NaN or inf); use another θ (e.g. an earlier checkpoint)")


def check_like(theta, template, source) -> None:
    """Raise :class:`ThetaFileError` naming ``source`` and the first array of ``theta`` whose name or shape
    differs from ``template`` (a fresh θ of the optimizer, or its ``jax.eval_shape``)."""
    have, want = array_shapes(theta), array_shapes(template)
    for name, shape in want.items():
        if name not in have:
            raise ThetaFileError(f"θ file {source}: does not match this learned optimizer: array {name!r} is "
                                 "missing (the file was made for another learned optimizer or config)")
        if have[name] != shape:
            raise ThetaFileError(f"θ file {source}: does not match this learned optimizer: array {name!r} has "
                                 f"shape {have[name]}, its config needs {shape}")
    extra = sorted(set(have) - set(want))
    if extra:
        raise ThetaFileError(f"θ file {source}: does not match this learned optimizer: unexpected array "
                             f"{extra[0]!r} (the file was made for another learned optimizer or config)")
