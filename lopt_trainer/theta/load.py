"""One way to get a θ, whatever names it: :func:`load_theta`; and how θ is identified and compared.

``load_theta`` takes every name of the one θ grammar (:mod:`lopt_trainer.theta.names`): a reference-layout
``.npz`` file, a meta-training run folder (its checkpoint), a checkpoint file, ``pretrained`` (the θ shipped with
the package) or one of :data:`UNTRAINED_THETAS` (a file or folder of that name wins). Every θ read from disk is checked
(:mod:`lopt_trainer.theta.check`): a damaged file or one holding NaN/inf stops here, naming the file and the
first bad array. :func:`warm_start_theta` additionally checks θ against the structure of the optimizer it will
drive.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from lopt_trainer.common import checkpoint as ckpt
from lopt_trainer.optimizer import hierarchical
from lopt_trainer.theta.check import check_finite, check_like
from lopt_trainer.theta.names import PRETRAINED, UNTRAINED_THETAS, is_theta_name
from lopt_trainer.theta.reference_io import load_reference_npz
from lopt_trainer.theta.shipped import pretrained

__all__ = ["UNTRAINED_THETAS", "load_theta", "theta_bytes", "theta_digest", "warm_start_theta"]


def load_theta(path):
    """θ (a pytree of jnp arrays) from a reference-layout ``.npz``, a meta-training run folder or checkpoint file
    (msgpack, no pickle), ``pretrained`` (the shipped θ), or one of :data:`UNTRAINED_THETAS`.

    Raises ``ThetaFileError`` / ``CheckpointError`` naming the file when it is damaged or an array of θ holds NaN
    or inf; ``FileNotFoundError`` when there is no θ at ``path``.
    """
    if is_theta_name(path):
        if str(path) == PRETRAINED:
            return pretrained()
        init = hierarchical.init_handset if str(path) == "handset" else hierarchical.init
        return init(jax.random.PRNGKey(0))
    path = Path(path).expanduser()
    if path.suffix == ".npz":
        return load_reference_npz(path)
    if path.is_dir():
        raw, source = ckpt.load_checkpoint(path), path / ckpt.FILENAME
    else:
        raw, source = ckpt.read_checkpoint(path), path
    if raw is None:
        raise FileNotFoundError(f"no checkpoint in {path}")
    check_finite(raw["theta"], source)
    return jax.tree_util.tree_map(jnp.asarray, raw["theta"])


def warm_start_theta(template, path):
    """θ loaded from ``path`` (see :func:`load_theta`) in the structure of ``template`` (a fresh θ of the run's
    optimizer, or its ``jax.eval_shape``); ``ThetaFileError`` naming the file and the first array that does not
    match (or holds NaN/inf)."""
    loaded = load_theta(path)
    check_like(loaded, template, path)
    return jax.tree_util.tree_map(lambda x, t: jnp.asarray(x, t.dtype), loaded, template)


def theta_digest(theta) -> str:
    """sha256 (first 16 hex digits) of θ's leaves in tree order, with their shapes: identifies a θ in result
    files."""
    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(jax.device_get(theta)):
        arr = np.asarray(leaf, np.float32)
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


def theta_bytes(theta) -> bytes:
    """A canonical byte string of θ (leaves in tree order) for bitwise comparisons."""
    return b"".join(np.asarray(x).tobytes() for x in jax.tree_util.tree_leaves(jax.device_get(theta)))

