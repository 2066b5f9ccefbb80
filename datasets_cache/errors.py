"""Exceptions raised by :mod:`datasets_cache`."""

from __future__ import annotations


class DatasetError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidDatasetNameError(DatasetError, ValueError):
    """The dataset name is malformed, unknown, or could escape the cache directory."""


class DatasetUnavailableError(DatasetError):
    """No cached copy and no working source: the message says what to install or set."""


class CacheCorruptError(DatasetError):
    """A cache entry is missing, truncated, or its checksum does not match its metadata."""


class SourceError(DatasetError):
    """One source of a dataset failed (a command failed, a file is missing, a format is wrong)."""


class DataDirError(DatasetError, ValueError):
    """``$TASKGEN_DATA_DIR`` cannot be the cache's root (a regular file, or under one)."""
