"""Checkpoints of a meta-training run: msgpack files (flax.serialization), written atomically. No pickle.

Layout of the payload (a dict of state dicts): ``format``, ``version``, ``step``, ``theta``, ``outer_state``,
``estimators`` (``{"0": EstimatorState, ...}``), ``sampler`` (JSON text of the sampler state), ``config`` (JSON
text of the run config), ``tasks_digest`` and ``tasks_count`` (of the run's training task list, checked on
resume; absent in older checkpoints). Arrays are stored with their exact bytes, so a resumed run continues bit
for bit. Restoring needs templates (:func:`restore_tree`): the trainer rebuilds them from the config and sampler
state.

The last two checkpoints are kept: ``checkpoint.msgpack`` and ``checkpoint.prev.msgpack``. A damaged current
one (truncated, empty, foreign bytes) makes :func:`load_checkpoint` fall back to the previous one with a
warning; when no usable one is left it raises :class:`~lopt_trainer.errors.CheckpointError` naming the file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import flax.serialization as fser
import jax
import jax.numpy as jnp

from lopt_trainer.errors import CheckpointError
from taskgen.specfile import atomic_write_bytes, read_file_bytes

FORMAT = "lopt-meta-checkpoint"
VERSION = 1
FILENAME = "checkpoint.msgpack"
PREVIOUS = "checkpoint.prev.msgpack"
DAMAGED = "checkpoint.damaged.msgpack"
_REQUIRED = ("step", "theta", "outer_state", "estimators", "sampler", "config")
ADDED_FIELDS = frozenset({"nonfinite_losses"})
"""State fields added after checkpoint version 1; absent in older files, restored from the template."""


def save_checkpoint(run_dir, *, step: int, theta, outer_state, estimators, sampler_json: str,
                    config_json: str, tasks_digest: str = "", tasks_count: int = 0) -> Path:
    """Serialise the run state to ``run_dir/checkpoint.msgpack`` (atomic); the one it replaces becomes
    ``checkpoint.prev.msgpack``. Returns the path."""
    payload = {
        "format": FORMAT, "version": VERSION, "step": int(step),
        "theta": fser.to_state_dict(theta),
        "outer_state": fser.to_state_dict(outer_state),
        "estimators": {str(i): fser.to_state_dict(e) for i, e in enumerate(estimators)},
        "sampler": sampler_json, "config": config_json,
        "tasks_digest": tasks_digest, "tasks_count": int(tasks_count),
    }
    data = fser.msgpack_serialize(jax.device_get(payload))
    path = Path(run_dir) / FILENAME
    if path.exists():
        os.replace(path, path.with_name(PREVIOUS))
    atomic_write_bytes(path, data)
    return path


def read_checkpoint(path) -> dict:
    """The raw payload of one checkpoint file (nested dicts of numpy arrays).

    Raises :class:`CheckpointError` ``checkpoint <path>: damaged (<reason>)`` for an empty, truncated or foreign
    file; ``OSError`` (e.g. ``FileNotFoundError``) when it cannot be read.
    """
    path = Path(path)
    data = read_file_bytes(path)
    if not data:
        raise CheckpointError(f"checkpoint {path}: damaged (empty file)")
    return decode_payload(data, f"checkpoint {path}", FORMAT, VERSION, _REQUIRED, CheckpointError)


def decode_payload(data: bytes, what: str, fmt: str, version: int, required, error=CheckpointError) -> dict:
    """A msgpack payload (flax serialization, no pickle) that must be a dict with ``format`` ``fmt``, ``version``
    ``version`` and every key of ``required``; otherwise ``error("<what>: damaged (<reason>)")`` (or a line naming
    the other format version)."""
    try:
        payload = fser.msgpack_restore(data)
    except Exception as e:  # msgpack's decoders raise many types (ExtraData, UnpackValueError, ValueError, ...)
        raise error(f"{what}: damaged ({type(e).__name__}: {e})") from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise error(f"{what}: damaged (not a {fmt} file)")
    if payload.get("version") != version:
        raise error(f"{what}: format version {payload.get('version')!r}, this toolkit reads version {version}")
    missing = [k for k in required if k not in payload]
    if missing:
        raise error(f"{what}: damaged (no {missing[0]!r} entry)")
    return payload


def load_checkpoint(run_dir) -> dict | None:
    """The raw payload of the run's checkpoint, or None if the run has none.

    Falls back to ``checkpoint.prev.msgpack`` (with a warning naming both files) when ``checkpoint.msgpack`` is
    missing or damaged (a damaged one is moved to ``checkpoint.damaged.msgpack``, so the next save keeps the good
    previous checkpoint); raises :class:`CheckpointError` naming the file and what to do when neither is usable.
    """
    run_dir = Path(run_dir)
    path, prev = run_dir / FILENAME, run_dir / PREVIOUS
    if not path.exists():
        if not prev.exists():
            return None
        raw = read_checkpoint(prev)
        warnings.warn(f"checkpoint {path} is missing; resuming from the previous checkpoint {prev} "
                      f"(step {raw['step']})", stacklevel=2)
        return raw
    try:
        return read_checkpoint(path)
    except CheckpointError as e:
        start_over = f"start the run again (delete {run_dir} or choose another --out)"
        if not prev.exists():
            raise CheckpointError(f"{e}; no previous checkpoint is kept: {start_over}") from None
        try:
            raw = read_checkpoint(prev)
        except CheckpointError as e2:
            raise CheckpointError(f"{e}; the previous one is damaged too ({e2}): {start_over}") from None
        # Move the damaged file aside, so that the next save does not rotate it over the good previous one.
        aside = run_dir / DAMAGED
        os.replace(path, aside)
        warnings.warn(f"{e}; resuming from the previous checkpoint {prev} (step {raw['step']}); the damaged file "
                      f"is kept as {aside}", stacklevel=2)
        return raw


def _fill_added(template, raw):
    """``raw`` with the :data:`ADDED_FIELDS` it lacks taken from ``template`` (both state dicts)."""
    if not isinstance(template, dict) or not isinstance(raw, dict):
        return raw
    out = dict(raw)
    for key, value in template.items():
        if key in raw:
            out[key] = _fill_added(value, raw[key])
        elif key in ADDED_FIELDS:
            out[key] = value
    return out


def restore_tree(template, raw):
    """``raw`` (a state dict) poured into the structure of ``template``, as device arrays (fields added since
    the checkpoint was written, see :data:`ADDED_FIELDS`, come from ``template``)."""
    tree = fser.from_state_dict(template, _fill_added(fser.to_state_dict(template), raw))
    return jax.tree_util.tree_map(jnp.asarray, tree)
