"""``TaskSpec``: a frozen, plain-data, content-addressed description of one task.

Canonical JSON = sorted keys, compact separators, UTF-8, Python's shortest round-trip float repr, NaN/Infinity
refused. ``task_id`` = ``<family>-<first 12 hex of sha256(canonical JSON of family, family_version, seed,
config)>``. The seed is part of the content because it seeds everything a build draws at random (eigenbases,
flow permutations, default init key, data order); the suite ``split`` is not, since it is assigned *from* the id.

Ranges: ``0 <= seed < 2**32`` (:data:`SEED_LIMIT`): JAX's ``PRNGKey(seed)`` keeps only the low 32 bits of a seed
(larger seeds alias smaller ones) and the manifest stores it as int64. ``0 <= family_version < 2**31`` (an int32
column). Values nest at most :data:`MAX_DEPTH` levels deep.

A spec computes its canonical JSON and id once and keeps them (private fields outside equality), so reading,
hashing, writing and exporting a spec serialise it once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from families.errors import ConfigError, short_repr
from families.space import check_json_types

SCHEMA_VERSION = 1
"""Version of the spec line format (fields and their meaning)."""

SUITE_SPLITS = ("meta_train", "meta_test")

SEED_LIMIT = 2**32
"""Seeds lie in ``[0, SEED_LIMIT)``: the range a JAX PRNG key holds without aliasing (and an int64 column)."""

FAMILY_VERSION_LIMIT = 2**31
"""Family versions lie in ``[0, FAMILY_VERSION_LIMIT)`` (the manifest's int32 column)."""

MAX_DEPTH = 64
"""Deepest nesting of lists/objects allowed in a spec (deeper input is refused, not a ``RecursionError``)."""


def canonical_json(value: Any) -> str:
    """Serialise JSON-typed ``value`` canonically (sorted keys, no whitespace, NaN/Infinity refused)."""
    check_json_types(value, max_depth=MAX_DEPTH)
    return _dumps(value)


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _dumps(value: Any) -> str:
    # Integers of more than 4300 digits exceed Python's str conversion limit: a ConfigError, not a ValueError.
    try:
        return _ENCODER.encode(value)
    except RecursionError:
        raise ConfigError("", f"nested too deeply (a spec may nest {MAX_DEPTH} levels)") from None
    except ValueError as e:
        raise ConfigError("", f"cannot be written as JSON: {e}") from None


def _content_json(family: str, family_version: int, seed: int, config_json: str) -> str:
    # The canonical JSON of {"config", "family", "family_version", "seed"} (keys in sorted order), assembled
    # from the config's canonical JSON so the config is serialised once.
    return (f'{{"config":{config_json},"family":{_dumps(family)},"family_version":{family_version},'
            f'"seed":{seed}}}')


def content_hash(family: str, family_version: int, seed: int, config: Mapping) -> str:
    """First 12 hex digits of the sha256 of the task's identifying content."""
    return _hash(_content_json(family, family_version, seed, canonical_json(config)))


def _hash(content_json: str) -> str:
    try:
        data = content_json.encode()
    except UnicodeEncodeError as e:  # a lone surrogate (e.g. "\\ud800" in a JSON string) has no UTF-8 form
        raise ConfigError("", f"a string holds an unpaired surrogate, which has no UTF-8 form ({e.reason})") from None
    return hashlib.sha256(data).hexdigest()[:12]


def _thaw(value):
    """A deep copy with plain dicts/lists (so callers cannot mutate a spec through its config)."""
    return json.loads(canonical_json(value))


@dataclasses.dataclass(frozen=True)
class _Cache:
    config_json: str
    task_id: str


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One task: its family, family version, seed and fully-resolved JSON config, plus its suite split.

    Build one with :meth:`create` (which checks JSON types) or :meth:`from_json` (which also checks the stored id).
    Specs are immutable and hashable (by id and split); their canonical JSON and id are computed once.
    """

    family: str
    family_version: int
    seed: int
    config: Mapping[str, Any]
    split: str = "meta_train"
    schema_version: int = SCHEMA_VERSION
    _cache: _Cache | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def create(cls, family: str, family_version: int, seed: int, config: Mapping, split: str = "meta_train"):
        """A spec with a private copy of ``config``; raises :class:`ConfigError` on non-JSON values or bad fields."""
        _check_header(family, family_version, seed, split)
        if not isinstance(config, Mapping):
            raise ConfigError("config", f"must be an object, got {type(config).__name__}")
        config_json = canonical_json(dict(config))
        return cls._trusted(family, family_version, seed, json.loads(config_json), split, config_json)

    @classmethod
    def _trusted(cls, family, family_version, seed, config, split, config_json):
        # ``config`` must be a private, JSON-typed dict whose canonical JSON is ``config_json``.
        spec = cls(family, family_version, seed, config, split)
        task_id = f"{family}-{_hash(_content_json(family, family_version, seed, config_json))}"
        object.__setattr__(spec, "_cache", _Cache(config_json, task_id))
        return spec

    def _cached(self) -> _Cache:
        cache = self._cache
        if cache is None:  # built with the plain constructor: check and serialise once, now
            _check_header(self.family, self.family_version, self.seed, self.split)
            config_json = canonical_json(self.config)
            digest = _hash(_content_json(self.family, self.family_version, self.seed, config_json))
            cache = _Cache(config_json, f"{self.family}-{digest}")
            object.__setattr__(self, "_cache", cache)
        return cache

    def __hash__(self):
        return hash((self.task_id, self.split))

    @property
    def task_id(self) -> str:
        """``<family>-<12 hex>``: the content address of this task."""
        return self._cached().task_id

    @property
    def config_json(self) -> str:
        """The canonical JSON of the config (computed once)."""
        return self._cached().config_json

    def to_dict(self) -> dict:
        """The spec as the JSON object stored on a spec line (including ``task_id``)."""
        return {"config": json.loads(self.config_json), "family": self.family,
                "family_version": self.family_version, "schema_version": self.schema_version, "seed": self.seed,
                "split": self.split, "task_id": self.task_id}

    def to_json(self) -> str:
        """Canonical JSON of :meth:`to_dict` (one spec line, without the newline)."""
        c = self._cached()
        return (f'{{"config":{c.config_json},"family":{_dumps(self.family)},"family_version":{self.family_version},'
                f'"schema_version":{self.schema_version},"seed":{self.seed},"split":{_dumps(self.split)},'
                f'"task_id":{_dumps(c.task_id)}}}')

    def with_split(self, split: str) -> "TaskSpec":
        """The same task with another suite split."""
        if split not in SUITE_SPLITS:
            raise ConfigError("split", f"{_short(split)} is not one of {list(SUITE_SPLITS)}")
        c = self._cached()
        spec = TaskSpec(self.family, self.family_version, self.seed, self.config, split)
        object.__setattr__(spec, "_cache", c)
        return spec

    @classmethod
    def from_dict(cls, data: Mapping) -> "TaskSpec":
        """Parse a spec object; refuses unknown schema versions, missing fields and a ``task_id`` that does not
        match the content."""
        return cls._parse(data, private=False)

    @classmethod
    def _parse(cls, data, private: bool) -> "TaskSpec":
        # ``private``: ``data`` was just parsed from JSON, so its config needs no defensive copy.
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
        if type(schema) is not int or schema != SCHEMA_VERSION:  # a JSON integer, as every integer field
            raise ConfigError("schema_version", f"{_short(schema)} is not supported (this toolkit reads the "
                                                f"integer {SCHEMA_VERSION})")
        family, version, seed, config = data["family"], data["family_version"], data["seed"], data["config"]
        split = data.get("split", "meta_train")
        if private and isinstance(config, dict):
            _check_header(family, version, seed, split)
            # Parsed JSON holds JSON types only and no NaN/Infinity (refused by the parser hooks): serialise as is.
            spec = cls._trusted(family, version, seed, config, split, _dumps(config))
        else:
            spec = cls.create(family, version, seed, config, split)
        stored = data.get("task_id")
        if stored is not None and stored != spec.task_id:
            raise ConfigError("task_id", f"stored id {_short(stored)} does not match the content (expected "
                                         f"{_short(spec.task_id)}); the spec was edited or corrupted")
        return spec

    @classmethod
    def from_json(cls, text: str | bytes) -> "TaskSpec":
        """Parse one spec line (see :meth:`from_dict`). Duplicate keys, NaN/Infinity, integers too long to
        convert and nesting deeper than :data:`MAX_DEPTH` are refused with :class:`ConfigError`."""
        try:
            data = _decoder().decode(text if isinstance(text, str) else text.decode("utf-8"))
        except ConfigError:
            raise
        except json.JSONDecodeError as e:
            raise ConfigError("", f"not valid JSON: {e}") from None
        except RecursionError:
            raise ConfigError("", f"nested too deeply (a spec may nest {MAX_DEPTH} levels)") from None
        except UnicodeDecodeError as e:
            raise ConfigError("", f"not UTF-8 text: {e.reason} at byte {e.start}") from None
        except ValueError as e:  # e.g. an integer literal over Python's 4300-digit conversion limit
            raise ConfigError("", f"not a valid spec line: {e}") from None
        return cls._parse(data, private=True)


def _check_header(family, family_version, seed, split) -> None:
    if not isinstance(family, str) or not family:
        raise ConfigError("family", f"must be a non-empty string, got {_short(family)}")
    for name, value, limit in (("family_version", family_version, FAMILY_VERSION_LIMIT), ("seed", seed, SEED_LIMIT)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(name, f"must be a non-negative integer, got {_short(value)}")
        if value >= limit:
            raise ConfigError(name, f"{_short(value)} is too large; allowed range [0, 2**{limit.bit_length() - 1})")
    if not isinstance(split, str) or split not in SUITE_SPLITS:
        raise ConfigError("split", f"{_short(split)} is not one of {list(SUITE_SPLITS)}")


def _short(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (:func:`families.errors.short_repr`)."""
    return short_repr(value, limit)


def _unique_keys(pairs):
    out = dict(pairs)
    if len(out) != len(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                raise ConfigError(k, "duplicate key in a JSON object (which value is meant?)")
            seen.add(k)
    return out


_DECODER: json.JSONDecoder | None = None


def _decoder() -> json.JSONDecoder:
    """One strict decoder, reused (``json.loads`` with hooks builds a new one per call)."""
    global _DECODER
    if _DECODER is None:
        _DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float,
                                    object_pairs_hook=_unique_keys)
    return _DECODER


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ConfigError("", f"{_short(text)} is out of the range of a float (no canonical JSON)")
    return value


def _refuse_constant(name):
    raise ConfigError("", f"{name} is not allowed in a spec (no canonical JSON)")
