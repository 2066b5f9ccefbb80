"""``TaskSpec``: a frozen, plain-data, content-addressed description of one task.

Canonical JSON = sorted keys, compact separators, UTF-8, Python's shortest round-trip float repr, NaN/Infinity
refused. ``task_id`` = ``<family>-<first 12 hex of sha256(canonical JSON of family, family_version, seed,
config)>``. The seed is part of the content because it seeds everything a build draws at random (eigenbases,
flow permutations, default init key, data order); the suite ``split`` is not, since it is assigned *from* the id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from families.base import ConfigError
from families.space import check_json_types

SCHEMA_VERSION = 1
"""Version of the spec line format (fields and their meaning)."""

SUITE_SPLITS = ("meta_train", "meta_test")


def canonical_json(value: Any) -> str:
    """Serialise JSON-typed ``value`` canonically (sorted keys, no whitespace, NaN/Infinity refused)."""
    check_json_types(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def content_hash(family: str, family_version: int, seed: int, config: Mapping) -> str:
    """First 12 hex digits of the sha256 of the task's identifying content."""
    payload = canonical_json({"config": config, "family": family, "family_version": family_version, "seed": seed})
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _thaw(value):
    """A deep copy with plain dicts/lists (so callers cannot mutate a spec through its config)."""
    return json.loads(canonical_json(value))


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One task: its family, family version, seed and fully-resolved JSON config, plus its suite split.

    Build one with :meth:`create` (which checks JSON types) or :meth:`from_json` (which also checks the stored id).
    """

    family: str
    family_version: int
    seed: int
    config: Mapping[str, Any]
    split: str = "meta_train"
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def create(cls, family: str, family_version: int, seed: int, config: Mapping, split: str = "meta_train"):
        """A spec with a private copy of ``config``; raises :class:`ConfigError` on non-JSON values or bad fields."""
        if not isinstance(family, str) or not family:
            raise ConfigError("family", f"must be a non-empty string, got {family!r}")
        for name, value in (("family_version", family_version), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(name, f"must be a non-negative integer, got {value!r}")
        if split not in SUITE_SPLITS:
            raise ConfigError("split", f"{split!r} is not one of {list(SUITE_SPLITS)}")
        if not isinstance(config, Mapping):
            raise ConfigError("config", f"must be an object, got {type(config).__name__}")
        return cls(family, family_version, seed, _thaw(dict(config)), split)

    @property
    def task_id(self) -> str:
        """``<family>-<12 hex>``: the content address of this task."""
        return f"{self.family}-{content_hash(self.family, self.family_version, self.seed, self.config)}"

    def to_dict(self) -> dict:
        """The spec as the JSON object stored on a spec line (including ``task_id``)."""
        return {"config": _thaw(self.config), "family": self.family, "family_version": self.family_version,
                "schema_version": self.schema_version, "seed": self.seed, "split": self.split,
                "task_id": self.task_id}

    def to_json(self) -> str:
        """Canonical JSON of :meth:`to_dict` (one spec line, without the newline)."""
        return canonical_json(self.to_dict())

    def with_split(self, split: str) -> "TaskSpec":
        """The same task with another suite split."""
        return TaskSpec.create(self.family, self.family_version, self.seed, self.config, split)

    @classmethod
    def from_dict(cls, data: Mapping) -> "TaskSpec":
        """Parse a spec object; refuses unknown schema versions, missing fields and a ``task_id`` that does not
        match the content."""
        if not isinstance(data, Mapping):
            raise ConfigError("", f"a spec must be a JSON object, got {type(data).__name__}")
        required = ("config", "family", "family_version", "seed")
        for name in required:
            if name not in data:
                raise ConfigError(name, "missing required spec field")
        allowed = set(required) | {"split", "schema_version", "task_id"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(unknown[0], f"unknown spec field; allowed: {sorted(allowed)}")
        schema = data.get("schema_version", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise ConfigError("schema_version", f"{schema!r} is not supported (this toolkit reads {SCHEMA_VERSION})")
        spec = cls.create(data["family"], data["family_version"], data["seed"], data["config"],
                          data.get("split", "meta_train"))
        stored = data.get("task_id")
        if stored is not None and stored != spec.task_id:
            raise ConfigError("task_id", f"stored id {stored!r} does not match the content (expected {spec.task_id!r});"
                                         " the spec was edited or corrupted")
        return spec

    @classmethod
    def from_json(cls, text: str) -> "TaskSpec":
        """Parse one spec line (see :meth:`from_dict`)."""
        try:
            data = json.loads(text, parse_constant=_refuse_constant)
        except json.JSONDecodeError as e:
            raise ConfigError("", f"not valid JSON: {e}") from None
        return cls.from_dict(data)


def _refuse_constant(name):
    raise ConfigError("", f"{name} is not allowed in a spec (no canonical JSON)")
