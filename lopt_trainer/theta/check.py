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


def check_finite(theta, source) -> None:
    """Raise :class:`ThetaFileError` naming ``source`` and the first array (tree order) holding NaN or inf."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(theta)[0]:
        arr = np.asarray(leaf)
        if np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
            bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            raise ThetaFileError(f"θ file {source}: array {array_name(path)!r} holds {bad} non-finite value(s) "
                                 "(NaN or inf); use another θ (e.g. an earlier checkpoint)")


def check_like(theta, template, source) -> None:
    """Raise :class:`ThetaFileError` naming ``source`` and the first array of ``theta`` whose name or shape
    differs from ``template`` (a fresh θ of the optimizer, or its ``jax.eval_shape``)."""
    have = dict((array_name(p), np.shape(x)) for p, x in jax.tree_util.tree_flatten_with_path(theta)[0])
    want = dict((array_name(p), tuple(x.shape)) for p, x in jax.tree_util.tree_flatten_with_path(template)[0])
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
