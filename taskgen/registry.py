"""The family registry: built-in families, plugins from the ``taskgen.families`` entry-point group, and families
registered explicitly with :func:`register_family`.

Nothing registers itself on import. Built-ins are named here by import path and loaded on first use; plugins are
discovered from installed packages' entry points when the registry is first consulted.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading

from families.base import Family

ENTRY_POINT_GROUP = "taskgen.families"

BUILTIN_FAMILIES = {
    "quadratic": "families.quadratic:QuadraticFamily",
    "twod": "families.twod:TwoDFamily",
    "mlp": "families.mlp:MLPFamily",
    "mlp_ae": "families.mlp_ae:MLPAEFamily",
    "mlp_vae": "families.mlp_vae:MLPVAEFamily",
    "conv_pooling": "families.conv:ConvPoolingFamily",
    "conv_fc": "families.conv:ConvFCFamily",
    "maf": "families.flows:MAFFamily",
    "nvp": "families.flows:NVPFamily",
    "char_lm": "families.lm:CharLMFamily",
    "word_lm": "families.lm:WordLMFamily",
    "rnn_text_classification": "families.text_classification:RNNTextClassificationFamily",
}
"""Name -> ``module:Class`` of every built-in family, in the suite's canonical order."""


class UnknownFamilyError(KeyError):
    """A family name that no built-in, plugin or registered family has."""

    def __init__(self, name: str, known: list[str]):
        self.name = name
        super().__init__(f"unknown family {name!r}; known families: {', '.join(known)}")

    def __str__(self):
        return self.args[0]


class DuplicateFamilyError(ValueError):
    """Two families claim the same name."""


def _load_object(path: str):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _instantiate(obj) -> Family:
    family = obj() if isinstance(obj, type) else obj
    if not isinstance(family, Family):
        raise TypeError(f"{obj!r} is not a taskgen Family (subclass families.base.Family)")
    if not family.name:
        raise TypeError(f"{obj!r} has an empty name")
    return family


class Registry:
    """A set of families by name. ``default_registry()`` is the process-wide one the CLI uses."""

    def __init__(self, builtins: dict[str, str] | None = None, use_entry_points: bool = True):
        self._lazy = dict(BUILTIN_FAMILIES if builtins is None else builtins)
        self._families: dict[str, Family] = {}
        self._use_entry_points = use_entry_points
        self._plugins_loaded = False
        self._lock = threading.Lock()

    def _load_plugins(self):
        if self._plugins_loaded or not self._use_entry_points:
            return
        self._plugins_loaded = True
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            family = _instantiate(ep.load())
            if family.name != ep.name:
                raise DuplicateFamilyError(f"entry point {ep.name!r} provides a family named {family.name!r}")
            self._add(family)

    def _add(self, family: Family):
        if family.name in self._lazy or family.name in self._families:
            raise DuplicateFamilyError(f"a family named {family.name!r} is already registered")
        self._families[family.name] = family

    def register(self, family) -> Family:
        """Add a family (a :class:`Family` instance or subclass); a name already taken is an error."""
        with self._lock:
            self._load_plugins()
            family = _instantiate(family)
            self._add(family)
            return family

    def names(self) -> list[str]:
        """All family names: built-ins in canonical order, then plugins and registered ones sorted."""
        with self._lock:
            self._load_plugins()
            return list(self._lazy) + sorted(n for n in self._families if n not in self._lazy)

    def get(self, name: str) -> Family:
        """The family called ``name``; :class:`UnknownFamilyError` (listing the known names) if there is none."""
        with self._lock:
            self._load_plugins()
            if name in self._families:
                return self._families[name]
            if name in self._lazy:
                family = _instantiate(_load_object(self._lazy[name]))
                self._families[name] = family
                return family
        raise UnknownFamilyError(name, self.names())


_DEFAULT: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry (built-ins + entry points + whatever :func:`register_family` added)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Registry()
    return _DEFAULT


def register_family(family) -> Family:
    """Register a user family (instance or subclass of :class:`families.base.Family`) in the default registry."""
    return default_registry().register(family)


def get_family(name: str) -> Family:
    """Look up a family by name in the default registry."""
    return default_registry().get(name)


def family_names() -> list[str]:
    """Names of every family in the default registry."""
    return default_registry().names()
