"""Declarative config spaces: what fields a family's config has and which values each may take.

A space is a tree of small frozen schema objects. :func:`validate_config` checks a config against it and raises
:class:`~families.errors.ConfigError` naming the field path and the allowed range; :func:`describe_space` renders it
as plain JSON for ``taskgen families``. Sampling distributions are not part of the space: each family samples with
its own (TaskSet-like) distributions inside the ranges declared here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from families.errors import ConfigError, short_repr


def json_kind(value) -> str:
    """The JSON type of a Python value: ``bool``, ``int``, ``float``, ``str``, ``null``, ``list``, ``object`` (or the
    Python type's name for anything else). ``True`` is not an integer and ``8.0`` is not an integer here."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


@dataclasses.dataclass(frozen=True)
class Int:
    """An integer in ``[lo, hi]``: a JSON integer only (``8.0`` and ``true`` are not integers)."""

    lo: int
    hi: int

    def check(self, value, path):
        """Raise :class:`ConfigError` naming ``path`` unless ``value`` belongs to this schema."""
        if json_kind(value) != "int":
            raise ConfigError(path, f"expected an integer in [{self.lo}, {self.hi}], got {json_kind(value)} "
                                    f"{short_repr(value)}")
        if not self.lo <= value <= self.hi:
            raise ConfigError(path, f"{short_repr(value)} is outside the allowed range [{self.lo}, {self.hi}]")

    def describe(self):
        """This schema as plain JSON (for ``taskgen families``)."""
        return {"type": "int", "range": [self.lo, self.hi]}


@dataclasses.dataclass(frozen=True)
class Float:
    """A finite float in ``[lo, hi]`` (JSON integers are accepted as floats, of any size: an integer too large
    for a float is compared exactly and is simply out of range)."""

    lo: float
    hi: float

    def check(self, value, path):
        """Raise :class:`ConfigError` naming ``path`` unless ``value`` belongs to this schema."""
        kind = json_kind(value)
        if kind not in ("int", "float"):
            raise ConfigError(path, f"expected a number in [{self.lo}, {self.hi}], got {kind} {short_repr(value)}")
        # int <= float compares exactly in Python (no conversion, so no OverflowError); only floats can be NaN/inf.
        if (kind == "float" and not math.isfinite(value)) or not self.lo <= value <= self.hi:
            raise ConfigError(path, f"{short_repr(value)} is outside the allowed range [{self.lo}, {self.hi}]")

    def describe(self):
        """This schema as plain JSON (for ``taskgen families``)."""
        return {"type": "float", "range": [self.lo, self.hi]}


@dataclasses.dataclass(frozen=True)
class Choice:
    """One of a fixed list of JSON scalars; the value must have an option's JSON type too (``8.0`` is not the
    option ``8``, ``true`` is not ``1``)."""

    options: tuple

    def __post_init__(self):
        object.__setattr__(self, "_typed", frozenset((json_kind(o), o) for o in self.options))

    def check(self, value, path):
        """Raise :class:`ConfigError` naming ``path`` unless ``value`` belongs to this schema."""
        kind = json_kind(value)
        if kind not in ("bool", "int", "float", "str", "null") or (kind, value) not in self._typed:
            same = [o for o in self.options if kind in ("bool", "int", "float") and o == value]
            hint = f" (it is a JSON {kind}; write {same[0]!r})" if same else ""
            raise ConfigError(path, f"{short_repr(value)} is not one of {list(self.options)}{hint}")

    def describe(self):
        """This schema as plain JSON (for ``taskgen families``)."""
        return {"type": "choice", "options": list(self.options)}


@dataclasses.dataclass(frozen=True)
class Bool:
    """``true`` or ``false``."""

    def check(self, value, path):
        """Raise :class:`ConfigError` naming ``path`` unless ``value`` belongs to this schema."""
        if not isinstance(value, bool):
            raise ConfigError(path, f"expected true or false, got {short_repr(value)}")

    def describe(self):
        """This schema as plain JSON (for ``taskgen families``)."""
        return {"type": "bool"}


@dataclasses.dataclass(frozen=True)
class ListOf:
    """A list of ``min_len``..``max_len`` items, each matching ``item``."""

    item: Any
    min_len: int
    max_len: int

    def check(self, value, path):
        """Raise :class:`ConfigError` naming ``path`` unless ``value`` belongs to this schema."""
        if not isinstance(value, list):
            raise ConfigError(path, f"expected a list of {self.min_len}..{self.max_len} items, got "
                                    f"{json_kind(value)} {short_repr(value)}")
        if not self.min_len <= len(value) <= self.max_len:
            raise ConfigError(path, f"has {len(value)} items; allowed {self.min_len}..{self.max_len}")
        for i, v in enumerate(value):
            self.item.check(v, f"{path}[{i}]")

    def describe(self):
        """This schema as plain JSON (for ``taskgen families``)."""
        return {"type": "list", "length": [self.min_len, self.max_len], "item": self.item.describe()}


@dataclasses.dataclass(frozen=True)
class Struct:
    """A dict with exactly the given fields (``optional`` names may be absent)."""

    fields: Mapping[str, Any]
    optional: frozenset = frozenset()

    def check(self, value, path):
        """Raise :class:`ConfigError` naming ``path`` unless ``value`` belongs to this schema."""
        if not isinstance(value, (dict, Mapping)):
            raise ConfigError(path, f"expected an object with fields {sorted(self.fields)}, got {json_kind(value)} "
                                    f"{short_repr(value)}")
        unknown = () if value.keys() <= self.fields.keys() else sorted(set(value) - set(self.fields))
        if unknown:
            raise ConfigError(_join(path, unknown[0]), f"unknown field; allowed fields are {sorted(self.fields)}")
        for name, schema in self.fields.items():
            if name not in value:
                if name in self.optional:
                    continue
                raise ConfigError(_join(path, name), "missing required field")
            schema.check(value[name], _join(path, name))

    def describe(self):
        """This schema as plain JSON (for ``taskgen families``)."""
        return {"type": "object", "fields": {k: v.describe() for k, v in self.fields.items()},
                "optional": sorted(self.optional)}


@dataclasses.dataclass(frozen=True)
class Tagged:
    """A dict whose ``tag`` field picks which :class:`Struct` the rest must match (a tagged union)."""

    tag: str
    variants: Mapping[str, Struct]

    def check(self, value, path):
        """Raise :class:`ConfigError` naming ``path`` unless ``value`` belongs to this schema."""
        if not isinstance(value, (dict, Mapping)) or self.tag not in value:
            raise ConfigError(_join(path, self.tag), f"missing; one of {sorted(self.variants)}")
        kind = value[self.tag]
        if not isinstance(kind, str) or kind not in self.variants:
            raise ConfigError(_join(path, self.tag), f"{short_repr(kind)} is not one of {sorted(self.variants)}")
        rest = {k: v for k, v in value.items() if k != self.tag}
        self.variants[kind].check(rest, path)

    def describe(self):
        """This schema as plain JSON (for ``taskgen families``)."""
        return {"type": "tagged", "tag": self.tag, "variants": {k: v.describe() for k, v in self.variants.items()}}


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def validate_config(space: Struct, config: Mapping[str, Any]) -> None:
    """Check ``config`` against ``space``; raise :class:`ConfigError` naming the first bad field."""
    space.check(config, "")


def describe_space(space: Struct) -> dict:
    """Render ``space`` as JSON-typed data (for ``taskgen families --json`` and the docs)."""
    return space.describe()


def check_json_types(value: Any, path: str = "", max_depth: int | None = None) -> None:
    """Raise :class:`ConfigError` if ``value`` holds anything but dict/list/str/int/finite float/bool/None, or (with
    ``max_depth``) nests lists/objects deeper than that."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:  # the common leaves first: this runs per spec
        return
    if t is float:
        if not math.isfinite(value):
            raise ConfigError(path, f"{value} is not allowed (NaN and Infinity have no canonical JSON)")
        return
    if max_depth is not None and max_depth < 0:
        raise ConfigError(path, "nested too deeply")
    depth = None if max_depth is None else max_depth - 1
    if t is dict or isinstance(value, Mapping):
        for k, v in value.items():
            if type(k) is not str:
                raise ConfigError(path, f"object keys must be strings, got {short_repr(k)}")
            check_json_types(v, _join(path, k) if type(v) in (dict, list) or not _is_leaf(v) else path, depth)
    elif t is list:
        for i, v in enumerate(value):
            check_json_types(v, f"{path}[{i}]" if type(v) in (dict, list) or not _is_leaf(v) else path, depth)
    elif isinstance(value, tuple):
        raise ConfigError(path, "tuples are not JSON; use a list")
    elif isinstance(value, list):  # subclasses of the JSON types, as before
        check_json_types(list(value), path, max_depth)
    elif isinstance(value, float):
        check_json_types(float(value), path, max_depth)
    elif isinstance(value, (str, int)):
        return
    else:
        raise ConfigError(path, f"{type(value).__name__} is not a JSON type")


def _is_leaf(v) -> bool:
    # A valid leaf (so its path string need not be built); an invalid one gets its path built for the error.
    t = type(v)
    return t is str or t is int or t is bool or v is None or (t is float and math.isfinite(v))


def choices(options: Sequence) -> Choice:
    """Shorthand for :class:`Choice` from any sequence."""
    return Choice(tuple(options))
