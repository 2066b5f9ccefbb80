"""The on-disk cache: atomic ``.npz`` + JSON metadata entries, verified by sha256 on every read.

Layout under :func:`data_dir` (``$TASKGEN_DATA_DIR``, default ``platformdirs.user_cache_dir('taskgen')``)::

    <dataset dir>/data.npz, data.json          the raw arrays of the dataset as fetched
    <dataset dir>/derived/<kind>-<key>.npz/.json   results of preprocessing (resized images, token streams)

An entry is an ``.npz`` (read with ``allow_pickle=False`` only) and a JSON file recording the npz's sha256,
size, the shape and dtype of each array, and free-form metadata (source, parameters). Both files are written
to a temp file in the same directory and moved into place with ``os.replace``, npz first: a crash leaves the
old entry, or a new npz whose checksum does not match the old JSON, which a read reports as corrupt.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from datasets_cache.errors import CacheCorruptError, DataDirError, InvalidDatasetNameError
from datasets_cache.registry import validate_name

ENV_VAR = "TASKGEN_DATA_DIR"
FORMAT_VERSION = 1
_TMP_PREFIX = ".tmp-"
_STALE_TMP_SECONDS = 24 * 3600


def data_dir() -> Path:
    """Root of the cache: ``$TASKGEN_DATA_DIR`` if set, else ``platformdirs.user_cache_dir('taskgen')``.

    Raises :class:`DataDirError` naming the setting when the path (or a folder above it) is a regular file.
    A read-only or missing directory is fine here: writes that fail cost only the caching (see ``store``).
    """
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        for p in (path, *path.parents):
            if p.exists():
                if not p.is_dir():
                    what = "is a regular file" if p == path else f"is under {p}, a regular file"
                    raise DataDirError(f"{ENV_VAR}={env}: {what}, not a directory; point {ENV_VAR} at a "
                                       "directory (or unset it for the default cache)")
                break
        return path
    import platformdirs

    return Path(platformdirs.user_cache_dir("taskgen"))


def dataset_path(name: str) -> Path:
    """Directory of dataset ``name`` inside the cache (it may not exist yet).

    The name is validated first; ``tfds:`` names map to a flat ``tfds-<slug>-<hash>`` directory so that no
    name can reach outside :func:`data_dir`.
    """
    validate_name(name)
    if name.startswith("tfds:"):
        slug = re.sub(r"[^a-z0-9_.-]", "_", name[len("tfds:"):])
        digest = hashlib.sha256(name.encode()).hexdigest()[:10]
        dirname = f"tfds-{slug}-{digest}"
    else:
        dirname = name
    root = data_dir().resolve()
    path = (root / dirname).resolve()
    if path.parent != root:  # belt and braces: validate_name already makes this impossible
        raise InvalidDatasetNameError(f"dataset directory {path} is not directly under {root}")
    return path


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    for key, arr in arrays.items():
        if not re.match(r"^[A-Za-z0-9_]+$", key):
            raise ValueError(f"array name {key!r} must match ^[A-Za-z0-9_]+$")
        if np.asarray(arr).dtype.hasobject:
            raise TypeError(f"array {key!r} has object dtype; the cache never stores pickles")
    # Like np.savez, but with a fixed zip timestamp and member order, so the same arrays always give the same
    # bytes (and the same sha256) whenever and wherever they are written.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arrays[key]), allow_pickle=False)
    return buf.getvalue()


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _atomic_target(path: Path) -> Iterator[Any]:
    """Open a temp file next to ``path``; on success fsync and ``os.replace`` it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP_PREFIX, suffix=path.suffix)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files: a shared cache must be readable by others
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _remove_stale_temps(directory: Path) -> None:
    now = time.time()
    for p in directory.glob(_TMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            if now - p.stat().st_mtime > _STALE_TMP_SECONDS:
                p.unlink()


def entry_paths(directory: Path, stem: str) -> tuple[Path, Path]:
    """The ``(npz, json)`` paths of entry ``stem`` in ``directory``."""
    if not re.match(r"^[A-Za-z0-9_.-]+$", stem) or stem.startswith("."):
        raise ValueError(f"bad cache entry name {stem!r}")
    return directory / f"{stem}.npz", directory / f"{stem}.json"


def encode_entry(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The npz bytes of ``arrays`` and the metadata record :func:`write_entry` stores with them (``meta`` plus
    ``sha256``, ``bytes``, ``arrays`` and ``format_version``), without writing anything."""
    data = _npz_bytes(arrays)
    record = dict(meta)
    record.update(
        format_version=FORMAT_VERSION,
        sha256=sha256_bytes(data),
        bytes=len(data),
        arrays={k: {"shape": list(np.shape(v)), "dtype": np.asarray(v).dtype.str} for k, v in arrays.items()},
    )
    return data, record


def list_entries(directory: Path) -> list[str]:
    """Stems of the entries in ``directory`` (one per ``.json``; none when the folder is absent)."""
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.json") if not p.name.startswith("."))


def write_entry(directory: Path, stem: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Path:
    """Atomically write ``arrays`` (no object dtypes) and ``meta`` (JSON types) as entry ``stem``.

    Returns the npz path. The JSON gets ``sha256``, ``bytes``, ``arrays`` (shape/dtype of each) and
    ``format_version`` added to ``meta``.
    """
    npz_path, json_path = entry_paths(directory, stem)
    data, record = encode_entry(arrays, meta)
    text = json.dumps(record, indent=1, sort_keys=True).encode()
    with _atomic_target(npz_path) as f:
        f.write(data)
    with _atomic_target(json_path) as f:
        f.write(text)
    _remove_stale_temps(directory)
    return npz_path


def entry_exists(directory: Path, stem: str) -> bool:
    """Whether either file of entry ``stem`` exists (it may still be corrupt)."""
    return any(p.exists() for p in entry_paths(directory, stem))


def read_meta(directory: Path, stem: str) -> dict[str, Any]:
    """The JSON metadata of entry ``stem``, without checking the npz; raises :class:`CacheCorruptError`."""
    _, json_path = entry_paths(directory, stem)
    try:
        meta = json.loads(json_path.read_text())
    except FileNotFoundError:
        raise CacheCorruptError(f"{json_path} is missing") from None
    except (OSError, ValueError) as e:
        raise CacheCorruptError(f"{json_path} is unreadable: {e}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str) or "arrays" not in meta:
        raise CacheCorruptError(f"{json_path} lacks sha256/arrays")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CacheCorruptError(f"{json_path} has format_version {meta.get('format_version')}, want {FORMAT_VERSION}")
    return meta


def read_entry(directory: Path, stem: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read and verify entry ``stem``: returns ``(arrays, meta)``.

    Raises :class:`CacheCorruptError` when a file is missing, truncated, fails its sha256, or holds arrays
    whose names, shapes or dtypes differ from the metadata. Never unpickles.
    """
    npz_path, _ = entry_paths(directory, stem)
    meta = read_meta(directory, stem)
    try:
        data = npz_path.read_bytes()
    except FileNotFoundError:
        raise CacheCorruptError(f"{npz_path} is missing") from None
    if len(data) != meta.get("bytes"):
        raise CacheCorruptError(f"{npz_path} has {len(data)} bytes, metadata says {meta.get('bytes')} (truncated?)")
    if sha256_bytes(data) != meta["sha256"]:
        raise CacheCorruptError(f"{npz_path} fails its sha256 check")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as e:  # zipfile/format errors of many kinds
        raise CacheCorruptError(f"{npz_path} is not a readable npz: {e}") from None
    want = meta["arrays"]
    if set(arrays) != set(want):
        raise CacheCorruptError(f"{npz_path} holds arrays {sorted(arrays)}, metadata says {sorted(want)}")
    for k, arr in arrays.items():
        if list(arr.shape) != want[k]["shape"] or arr.dtype.str != want[k]["dtype"]:
            raise CacheCorruptError(f"{npz_path}: array {k!r} is {arr.dtype.str}{arr.shape}, metadata says {want[k]}")
    return arrays, meta


def remove_entry(directory: Path, stem: str) -> None:
    """Delete both files of entry ``stem`` if present."""
    for p in entry_paths(directory, stem):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def derived_key(params: Mapping[str, Any]) -> str:
    """A short stable key for preprocessing parameters (canonical JSON, sha256, 16 hex digits)."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
