"""Checkpoints of a meta-training run: one msgpack file (flax.serialization), written atomically. No pickle.

Layout of the payload (a dict of state dicts): ``format``, ``version``, ``step``, ``theta``, ``outer_state``,
``estimators`` (``{"0": EstimatorState, ...}``), ``sampler`` (JSON text of the sampler state), ``config`` (JSON
text of the run config). Arrays are stored with their exact bytes, so a resumed run continues bit for bit.
Restoring needs templates (:func:`restore_tree`): the trainer rebuilds them from the config and sampler state.
"""

from __future__ import annotations

from taskgen.specfile import atomic_write_bytes
from pathlib import Path

import flax.serialization as fser
import jax
import jax.numpy as jnp

FORMAT = "lopt-meta-checkpoint"
VERSION = 1
FILENAME = "checkpoint.msgpack"


def save_checkpoint(run_dir, *, step: int, theta, outer_state, estimators, sampler_json: str,
                    config_json: str) -> Path:
    """Serialise the run state to ``run_dir/checkpoint.msgpack`` (atomic); returns the path."""
    payload = {
        "format": FORMAT, "version": VERSION, "step": int(step),
        "theta": fser.to_state_dict(theta),
        "outer_state": fser.to_state_dict(outer_state),
        "estimators": {str(i): fser.to_state_dict(e) for i, e in enumerate(estimators)},
        "sampler": sampler_json, "config": config_json,
    }
    payload = jax.device_get(payload)
    path = Path(run_dir) / FILENAME
    atomic_write_bytes(path, fser.msgpack_serialize(payload))
    return path


def load_checkpoint(run_dir) -> dict | None:
    """The raw payload of ``run_dir/checkpoint.msgpack`` (nested dicts of numpy arrays), or None if absent."""
    path = Path(run_dir) / FILENAME
    if not path.exists():
        return None
    payload = fser.msgpack_restore(path.read_bytes())
    if payload.get("format") != FORMAT or payload.get("version") != VERSION:
        raise ValueError(f"{path}: not a {FORMAT} v{VERSION} file")
    return payload


def restore_tree(template, raw):
    """``raw`` (a state dict) poured into the structure of ``template``, as device arrays."""
    tree = fser.from_state_dict(template, raw)
    return jax.tree_util.tree_map(jnp.asarray, tree)
