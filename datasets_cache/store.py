"""Fetch orchestration: cache first, then each source in order; verification; derived-result caching."""

from __future__ import annotations

import contextlib
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from datasets_cache import cache, sources
from datasets_cache.errors import CacheCorruptError, DatasetUnavailableError, SourceError
from datasets_cache.registry import get_info

RAW = "data"
DERIVED_DIR = "derived"
# Bump when any preprocessing (resize, tokenisation, example building) changes its output.
DERIVED_VERSION = 1


def _sources(name: str, tfds_data_dir: str | None) -> list[sources.Source]:
    if name.startswith("tfds:"):
        from datasets_cache import tfds_source

        return [tfds_source.source(name[len("tfds:"):], tfds_data_dir)]
    return sources.sources_for(name)


def is_cached(name: str) -> bool:
    """Whether ``name`` has a cache entry whose metadata is readable and whose npz has the recorded size.

    Cheap (no checksum); :func:`verify` does the full check.
    """
    directory = cache.dataset_path(name)
    try:
        meta = cache.read_meta(directory, RAW)
    except CacheCorruptError:
        return False
    npz, _ = cache.entry_paths(directory, RAW)
    return npz.is_file() and npz.stat().st_size == meta["bytes"]


def verify(name: str) -> tuple[bool, str]:
    """Fully check every cache entry of ``name`` that a read may use — the raw entry and each derived one
    (resized images, token streams) — (sha256, npz readable, shapes): ``(ok, message)``.

    Does not fetch; a missing raw entry is reported as not ok.
    """
    directory = cache.dataset_path(name)
    if not cache.entry_exists(directory, RAW):
        return False, f"{name}: not cached (in {directory})"
    try:
        _, meta = cache.read_entry(directory, RAW)
    except CacheCorruptError as e:
        return False, f"{name}: CORRUPT: {e}"
    derived = cache.list_entries(directory / DERIVED_DIR)
    for stem in derived:
        try:
            cache.read_entry(directory / DERIVED_DIR, stem)
        except CacheCorruptError as e:
            return False, f"{name}: CORRUPT derived entry {stem}: {e}"
    return True, (f"{name}: ok (sha256 {meta['sha256'][:12]}, {meta['bytes']:,} bytes, from {meta.get('source')}"
                  f"; {len(derived)} derived entries)")


def load_raw(
    name: str, *, progress: bool = False, tfds_data_dir: str | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The raw arrays and metadata of ``name``: from the cache if valid, else fetched and cached.

    A corrupt entry is reported with a warning and re-fetched. Raises :class:`DatasetUnavailableError`
    naming what to install or set when no source works.
    """
    directory = cache.dataset_path(name)
    if str(directory) in _IN_MEMORY:
        return _IN_MEMORY[str(directory)]
    corrupt = False
    if cache.entry_exists(directory, RAW):
        try:
            return cache.read_entry(directory, RAW)
        except CacheCorruptError as e:
            # Not removed yet: a successful fetch overwrites it atomically (another process may be writing it).
            warnings.warn(f"cached dataset {name!r} is corrupt ({e}); re-fetching", stacklevel=2)
            corrupt = True
    info = get_info(name)
    failures = []
    srcs = _sources(name, tfds_data_dir)
    bar = _progress_bar(name, len(srcs), progress)
    try:
        for src in srcs:
            if bar is not None:
                bar.set_postfix_str(src.description[:50])
            t0 = time.perf_counter()
            try:
                arrays = src.fetch()
            except SourceError as e:
                failures.append(f"  - {src.description}: {e}")
                if bar is not None:
                    bar.update(1)
                continue
            meta = {
                "name": name,
                "kind": info.kind,
                "source": src.description,
                "source_kind": src.kind,
                "fetch_seconds": round(time.perf_counter() - t0, 3),
            }
            if bar is not None:
                bar.update(bar.total - bar.n)
            try:
                cache.write_entry(directory, RAW, arrays, meta)
            except OSError as e:  # read-only or full cache: the data still serves this process
                return _keep_in_memory(name, directory, arrays, meta, e)
            return cache.read_entry(directory, RAW)
    finally:
        if bar is not None:
            bar.close()
    if corrupt:
        with contextlib.suppress(OSError):
            cache.remove_entry(directory, RAW)
    raise DatasetUnavailableError(
        f"dataset {name!r} is not cached in {directory} and no source worked:\n"
        + "\n".join(failures)
        + f"\nTo fix: {info.install_hint}"
    )


_IN_MEMORY: dict[str, tuple[dict[str, np.ndarray], dict[str, Any]]] = {}
"""Datasets fetched by this process that could not be written to the cache, by cache directory (kept so they
are fetched once)."""
_WARNED_DERIVED: set[str] = set()
"""Derived-entry directories whose failed write has been warned about (once each)."""


def _keep_in_memory(name, directory, arrays, meta, error):
    """``(arrays, record)`` of a fetched dataset the cache could not store; warns naming the setting."""
    warnings.warn(f"could not cache dataset {name!r} in {directory} ({error.strerror or error}); using it from "
                  f"memory for this run (set {cache.ENV_VAR} to a writable directory to keep it)", stacklevel=3)
    _, record = cache.encode_entry(arrays, meta)
    _IN_MEMORY[str(directory)] = ({k: np.asarray(v) for k, v in arrays.items()}, record)
    return _IN_MEMORY[str(directory)]


def fetch(name: str, progress: bool = True, *, tfds_data_dir: str | None = None) -> Path:
    """Make sure ``name`` is in the cache (fetching it if needed) and return its cache directory."""
    load_raw(name, progress=progress, tfds_data_dir=tfds_data_dir)
    return cache.dataset_path(name)


def raw_meta(name: str, *, tfds_data_dir: str | None = None) -> dict[str, Any]:
    """Metadata of the raw entry, fetching the dataset first if the entry is missing or unreadable."""
    directory = cache.dataset_path(name)
    if str(directory) in _IN_MEMORY:
        return _IN_MEMORY[str(directory)][1]
    try:
        return cache.read_meta(directory, RAW)
    except CacheCorruptError:
        return load_raw(name, tfds_data_dir=tfds_data_dir)[1]


def cached_derived(
    name: str,
    kind: str,
    params: Mapping[str, Any],
    compute: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    *,
    tfds_data_dir: str | None = None,
) -> dict[str, np.ndarray]:
    """Result of ``compute(raw arrays)`` for ``params``, cached under ``<dataset>/derived/``.

    The key covers ``kind``, ``params``, the raw entry's sha256 and :data:`DERIVED_VERSION`, so a re-fetched
    dataset or a code change never serves stale results. The raw arrays are only loaded on a miss.
    """
    raw_sha = raw_meta(name, tfds_data_dir=tfds_data_dir)["sha256"]
    key = cache.derived_key({"kind": kind, "params": dict(params), "raw": raw_sha, "v": DERIVED_VERSION})
    directory = cache.dataset_path(name) / DERIVED_DIR
    stem = f"{kind}-{key}"
    if cache.entry_exists(directory, stem):
        try:
            return cache.read_entry(directory, stem)[0]
        except CacheCorruptError as e:
            warnings.warn(f"derived cache entry {stem} of {name!r} is corrupt ({e}); recomputing", stacklevel=2)
            with contextlib.suppress(OSError):  # a read-only cache keeps it; the result is recomputed anyway
                cache.remove_entry(directory, stem)
    raw, meta = load_raw(name, tfds_data_dir=tfds_data_dir)
    if meta["sha256"] != raw_sha:  # re-fetched in between: key on what we actually computed from
        key = cache.derived_key({"kind": kind, "params": dict(params), "raw": meta["sha256"], "v": DERIVED_VERSION})
        stem = f"{kind}-{key}"
    result = compute(raw)
    try:
        cache.write_entry(directory, stem, result, {"name": name, "kind": kind, "params": dict(params)})
    except OSError as e:  # a read-only cache still serves results, just not fast ones
        if str(directory) not in _WARNED_DERIVED:
            _WARNED_DERIVED.add(str(directory))
            warnings.warn(f"could not cache {stem} of {name!r} in {directory} ({e.strerror or e}); computing it "
                          f"in memory (set {cache.ENV_VAR} to a writable directory to keep it)", stacklevel=2)
    return result



def _progress_bar(name: str, total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"fetch {name}", unit="source", leave=False)
