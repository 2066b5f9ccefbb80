"""Interchange of θ with the reference implementation's parameter layout.

The reference (learned_optimization's `RNNMLPLOpt`, Haiku) names its
parameters as below; our θ (`hierarchical.init`) keeps the same matrices with
the same row orders under shorter names, so the conversion is a renaming and
round trips are exact.  Files are plain `.npz` (no pickle), written
atomically and deterministically (fixed member order and timestamps, so the
same θ always gives the same file bytes).
"""

from __future__ import annotations

import io
import os
import zipfile

import jax.numpy as jnp
import numpy as np

from lopt_trainer.errors import ThetaFileError
from lopt_trainer.optimizer.hierarchical import DEFAULT_CONFIG, LOptConfig
from lopt_trainer.theta.check import check_finite
from taskgen.specfile import atomic_write_bytes, check_regular_file

_MLP_PREFIX = "ffmod_params/mlp/~/linear_"


def _key_map(config: LOptConfig) -> dict[str, tuple[str, ...]]:
    """Reference key -> path in our θ."""
    keys = {
        "initial_from_lstm": ("initial_from_lstm",),
        "initial_from_mlp": ("initial_from_mlp",),
        "lstm_init_state/hidden": ("lstm", "init_hidden"),
        "lstm_init_state/cell": ("lstm", "init_cell"),
        "rnn_params/rnn/linear/w": ("lstm", "w"),
        "rnn_params/rnn/linear/b": ("lstm", "b"),
        "rnn_to_ff_params/rnn_to_ff/w": ("to_mlp", "w"),
        "rnn_to_ff_params/rnn_to_ff/b": ("to_mlp", "b"),
        "rnn_to_in_params/rnn_to_in/w": ("to_lstm", "w"),
        "rnn_to_in_params/rnn_to_in/b": ("to_lstm", "b"),
    }
    for i in range(len(config.mlp_hidden) + 1):
        keys[f"{_MLP_PREFIX}{i}/w"] = ("mlp", f"w{i}")
        keys[f"{_MLP_PREFIX}{i}/b"] = ("mlp", f"b{i}")
    return keys


def reference_shapes(config: LOptConfig = DEFAULT_CONFIG) -> dict[str, tuple[int, ...]]:
    """Expected reference key -> array shape for `config` (the issue's table)."""
    h = config.lstm_hidden
    shapes = {
        "initial_from_lstm": (config.from_lstm_size,),
        "initial_from_mlp": (config.from_mlp_size,),
        "lstm_init_state/hidden": (1, h),
        "lstm_init_state/cell": (1, h),
        "rnn_params/rnn/linear/w": (config.lstm_input_size + h, 4 * h),
        "rnn_params/rnn/linear/b": (4 * h,),
        "rnn_to_ff_params/rnn_to_ff/w": (h, config.to_mlp_size),
        "rnn_to_ff_params/rnn_to_ff/b": (config.to_mlp_size,),
        "rnn_to_in_params/rnn_to_in/w": (h, config.from_lstm_size),
        "rnn_to_in_params/rnn_to_in/b": (config.from_lstm_size,),
    }
    sizes = (config.mlp_input_size, *config.mlp_hidden, config.mlp_output_size)
    for i in range(len(sizes) - 1):
        shapes[f"{_MLP_PREFIX}{i}/w"] = (sizes[i], sizes[i + 1])
        shapes[f"{_MLP_PREFIX}{i}/b"] = (sizes[i + 1],)
    return shapes


def to_reference(theta: dict, config: LOptConfig = DEFAULT_CONFIG) -> dict[str, np.ndarray]:
    """Converts our θ to a flat dict {reference key: float32 numpy array}."""
    out = {}
    for key, path in _key_map(config).items():
        node = theta
        for part in path:
            node = node[part]
        out[key] = np.asarray(node, dtype=np.float32)
    return out


def from_reference(arrays: dict, config: LOptConfig = DEFAULT_CONFIG) -> dict:
    """Converts {reference key: array} to our θ (float32 jnp arrays).

    Raises ValueError naming the offending key on a missing or unexpected key
    or a shape that does not match `config`.
    """
    shapes = reference_shapes(config)
    missing = sorted(set(shapes) - set(arrays))
    extra = sorted(set(arrays) - set(shapes))
    if missing or extra:
        raise ValueError(f"reference θ keys do not match config: missing={missing}, unexpected={extra}")
    theta: dict = {}
    for key, path in _key_map(config).items():
        arr = np.asarray(arrays[key])
        if arr.shape != shapes[key]:
            raise ValueError(f"reference θ key {key!r} has shape {arr.shape}, expected {shapes[key]}")
        if not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(f"reference θ key {key!r} has non-float dtype {arr.dtype}")
        node = theta
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = jnp.asarray(arr.astype(np.float32))
    return theta


def load_reference_npz(path, config: LOptConfig = DEFAULT_CONFIG) -> dict:
    """Reads θ from an `.npz` in the reference layout (never unpickles).

    Takes a file path (and the config the shapes are checked against);
    returns θ as `hierarchical.init` lays it out.  Raises
    `errors.ThetaFileError` naming the file when it is damaged (truncated,
    not an .npz), when an array holds NaN or inf (naming the first, in
    sorted key order), or when its keys or shapes do not fit `config`;
    `FileNotFoundError` when it is absent.
    """
    check_regular_file(path)  # a device or a FIFO is refused before numpy opens it
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise ValueError("a single .npy array, not an .npz archive")
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError) as e:
        raise ThetaFileError(f"θ file {path}: damaged or not an .npz archive ({type(e).__name__}: {e}); "
                             "restore it or export θ again") from None
    check_finite(arrays, path)
    try:
        return from_reference(arrays, config)
    except ValueError as e:
        raise ThetaFileError(f"θ file {path}: {e}") from None


def save_reference_npz(theta: dict, path, config: LOptConfig = DEFAULT_CONFIG) -> None:
    """Writes θ to `path` as an `.npz` in the reference layout.

    Atomic (temporary file in the same folder, then `os.replace`) and
    deterministic (members sorted, fixed timestamps, stored uncompressed).
    """
    atomic_write_bytes(os.fspath(path), reference_npz_bytes(theta, config))


def reference_npz_bytes(theta: dict, config: LOptConfig = DEFAULT_CONFIG) -> bytes:
    """The bytes :func:`save_reference_npz` writes for θ (members sorted, fixed timestamps, uncompressed)."""
    arrays = to_reference(theta, config)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arrays[key], allow_pickle=False)
    return buffer.getvalue()
