"""The frozen default suite shipped with the package: where its files lie, and its lock record
(``default-v1.lock.json``: the sha256 of the spec file and of the manifest, and the families' versions), which lets
the loaders skip re-checking a file whose bytes are exactly those frozen."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

DEFAULT_SUITE_NAME = "default-v1"


def default_suite_path() -> Path:
    """Path of the frozen default suite shipped with the package (``taskgen/suites/default-v1.jsonl``)."""
    return Path(str(resources.files("taskgen") / "suites" / f"{DEFAULT_SUITE_NAME}.jsonl"))


def default_manifest_path() -> Path:
    """Path of the frozen Arrow manifest of the default suite (``taskgen/suites/default-v1.arrow``)."""
    return default_suite_path().with_suffix(".arrow")


def frozen_record() -> dict | None:
    """The record of the frozen default suite, ``default-v1.lock.json``: the sha256 of the suite's spec file
    (``sha256``) and of its manifest (``manifest_sha256``) and its families' versions (``family_versions``);
    None if it cannot be read. A test keeps it true; the loaders' fast paths trust a file only while it matches."""
    lock_path = default_suite_path().with_name(f"{DEFAULT_SUITE_NAME}.lock.json")
    try:
        record = json.loads(lock_path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
