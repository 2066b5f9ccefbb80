"""The family registry: built-in families, plugins from the ``taskgen.families`` entry-point group, and families
registered explicitly with :func:`register_family`.

Nothing registers itself on import. Built-ins are named here by import path and loaded on first use; plugins are
discovered from installed packages' entry points when the registry is first consulted, and loaded on first use too;
the process-wide registry also imports the modules named by ``TASKGEN_PLUGINS`` / ``taskgen --plugin`` when it is
first made (see *Plugins named by a setting* below; one of those that cannot be imported is an error naming it and the setting).

An entry-point plugin that cannot be loaded costs only its own family: a warning naming the entry point, and
:class:`FamilyUnavailableError` when that family is asked for. "Cannot be loaded" means any failure while importing
and instantiating it: an exception of any kind, including ``SystemExit`` (a module that runs ``argparse`` or calls
``sys.exit`` at import) and other ``BaseException`` subclasses, but not ``KeyboardInterrupt`` (the user's Ctrl-C
stops the command); and a loaded object that is not a usable family (not a :class:`Family`, an empty or foreign
name, a version that is not an integer in ``[0, 2**31)``). Every command sees the same set of families: those that
load (:meth:`Registry.load_all`).

**Plugins named by a setting.** Loading user families into a process: ``taskgen --plugin MODULE`` and the ``TASKGEN_PLUGINS`` variable.

A *plugin* is a Python module (importable from ``sys.path``) named in one of two ways:

* ``MODULE`` (e.g. ``my_package.families``): the module is imported; it registers its families itself by calling
  :func:`taskgen.register_family` at import.
* ``MODULE:NAME`` (e.g. ``my_package.families:SoftmaxRegressionFamily``): the module is imported and ``NAME`` (a
  :class:`taskgen.Family` subclass or instance) is registered in the default registry; the module needs no
  registration code of its own.

``TASKGEN_PLUGINS`` holds comma-separated plugins. The default registry imports them the first time it is used in
a process (:func:`default_registry`), so a process started by the toolkit (a Ray worker, a
subprocess) sees the same families as its parent as long as it inherits the variable; ``taskgen --plugin`` adds
its plugins to the variable for that reason. A plugin that cannot be imported is a :class:`PluginError` naming the
plugin and the setting it came from. Installed packages can skip all this by exposing their families under the
``taskgen.families`` entry-point group (found without any setting).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import threading
import warnings

from families.base import Family
from families.errors import short_repr, short_text
from taskgen.spec import FAMILY_VERSION_LIMIT

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


PLUGIN_HINT = ("load a plugin family with --plugin MODULE or TASKGEN_PLUGINS, or install a package exposing the "
               f"entry point {ENTRY_POINT_GROUP}")
"""How to make a family known, as the unknown-family error says it."""


class UnknownFamilyError(KeyError):
    """A family name that no built-in, plugin or registered family has."""

    def __init__(self, name: str, known: list[str]):
        self.name = name
        super().__init__(f"unknown family {short_repr(name)}; known families: {', '.join(known)}; {PLUGIN_HINT}")

    def __str__(self):
        return self.args[0]


class FamilyUnavailableError(UnknownFamilyError):
    """A family whose plugin entry point exists but cannot be loaded (the reason is in the message)."""

    def __init__(self, name: str, reason: str):
        self.name = name
        KeyError.__init__(self, f"family {name!r} is unavailable: {reason}")


class DuplicateFamilyError(ValueError):
    """Two families claim the same name."""


def _load_object(path: str):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _instantiate(obj) -> Family:
    family = obj() if isinstance(obj, type) else obj
    if not isinstance(family, Family):
        raise TypeError(f"{short_repr(obj)} is not a taskgen Family (subclass families.base.Family)")
    if not isinstance(family.name, str) or not family.name:
        raise TypeError(f"{short_repr(obj)} has no name (a non-empty string)")
    version = family.version
    if type(version) is not int or not 0 <= version < FAMILY_VERSION_LIMIT:
        raise TypeError(f"family {family.name!r} has version {short_repr(version)}; a version is an integer in "
                        f"[0, 2**31)")
    return family


def _failure(e: BaseException) -> str:
    """``Type: message`` of a plugin's failure, for the warning (``SystemExit: 2`` for an argparse exit)."""
    text = short_text(e, 300) if str(e) else ""
    if isinstance(e, SystemExit):
        text = f"exited with status {short_repr(e.code)} while loading"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class Registry:
    """A set of families by name. ``default_registry()`` is the process-wide one the CLI uses."""

    def __init__(self, builtins: dict[str, str] | None = None, use_entry_points: bool = True):
        self._lazy = dict(BUILTIN_FAMILIES if builtins is None else builtins)
        self._families: dict[str, Family] = {}
        self._plugins: dict = {}  # name -> entry point not loaded yet
        self._broken: dict[str, str] = {}  # name -> why its entry point could not be loaded
        self._use_entry_points = use_entry_points
        self._plugins_found = False
        self._lock = threading.RLock()

    def _find_plugins(self):
        if self._plugins_found or not self._use_entry_points:
            return
        self._plugins_found = True
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self._lazy or ep.name in self._families or ep.name in self._plugins:
                self._mark_broken(ep, f"the name {ep.name!r} is already taken by another family")
                continue
            self._plugins[ep.name] = ep

    def _mark_broken(self, ep, reason: str):
        where = getattr(ep, "value", None) or "?"
        message = f"entry point {ep.name!r} ({where}) of group {ENTRY_POINT_GROUP!r}: {reason}"
        if ep.name not in self._lazy and ep.name not in self._families:
            self._broken.setdefault(ep.name, message)
        warnings.warn(f"taskgen: skipping family plugin {message}", RuntimeWarning, stacklevel=3)

    def _load_plugin(self, name: str) -> Family | None:
        ep = self._plugins.pop(name)
        try:
            family = _instantiate(ep.load())
            if family.name != ep.name:
                raise DuplicateFamilyError(f"entry point {ep.name!r} provides a family named {short_repr(family.name)}")
        except KeyboardInterrupt:  # the user's Ctrl-C stops the command
            raise
        except BaseException as e:  # noqa: B036 -- a third-party module may fail in any way (SystemExit from an
            # argparse at import, GeneratorExit, ...); it must not take the others down
            self._mark_broken(ep, _failure(e))
            return None
        self._families[name] = family
        return family

    def _load_plugins(self):
        self._find_plugins()
        for name in list(self._plugins):
            self._load_plugin(name)

    def _add(self, family: Family):
        if family.name in self._lazy or family.name in self._families:
            raise DuplicateFamilyError(f"a family named {family.name!r} is already registered")
        self._families[family.name] = family

    def register(self, family) -> Family:
        """Add a family (a :class:`Family` instance or subclass); a name already taken is an error."""
        with self._lock:
            self._find_plugins()
            family = _instantiate(family)
            if family.name in self._plugins:
                raise DuplicateFamilyError(f"a family named {family.name!r} is already registered (plugin)")
            self._add(family)
            return family

    def names(self) -> list[str]:
        """All family names: built-ins in canonical order, then plugins and registered ones sorted (plugins that
        could not be loaded are left out)."""
        with self._lock:
            self._find_plugins()
            others = (set(self._families) | set(self._plugins)) - set(self._lazy)
            return list(self._lazy) + sorted(others)

    def load_all(self) -> list[Family]:
        """Every family that loads, in the order of :meth:`names` (plugins that fail to load are warned about
        and skipped). Commands that mean "all families" use this list."""
        with self._lock:
            self._load_plugins()
            return [self.get(n) for n in self.names()]

    def get(self, name: str) -> Family:
        """The family called ``name``; :class:`UnknownFamilyError` (listing the known names) if there is none,
        :class:`FamilyUnavailableError` if its plugin cannot be loaded."""
        with self._lock:
            self._find_plugins()
            if name in self._families:
                return self._families[name]
            if name in self._lazy:
                family = _instantiate(_load_object(self._lazy[name]))
                self._families[name] = family
                return family
            if name in self._plugins:
                family = self._load_plugin(name)
                if family is not None:
                    return family
            if name in self._broken:
                raise FamilyUnavailableError(name, self._broken[name])
        raise UnknownFamilyError(name, self.names())


_DEFAULT: Registry | None = None


# ---------------------------------------------------------------------------------------- plugins by setting

PLUGINS_ENV = "TASKGEN_PLUGINS"
"""Environment variable: comma-separated plugins (``MODULE`` or ``MODULE:NAME``) imported by every process."""
PLUGIN_OPTION = "--plugin"
"""The command-line option that names a plugin (repeatable)."""


class PluginError(ImportError):
    """A plugin that cannot be loaded; the message names it, the setting it came from and the reason."""

    def __init__(self, plugin: str, setting: str, reason: str):
        self.plugin, self.setting, self.reason = plugin, setting, reason
        super().__init__(f"cannot load family plugin {short_repr(plugin)} (from {setting}): {reason}")

    def __str__(self):
        return self.args[0]


def env_plugins() -> list[str]:
    """The plugins named by ``TASKGEN_PLUGINS`` (comma-separated; blanks and repeats dropped), in order."""
    return _unique(p.strip() for p in os.environ.get(PLUGINS_ENV, "").split(","))


def _unique(names) -> list[str]:
    seen: dict[str, None] = {}
    for name in names:
        if name:
            seen.setdefault(name, None)
    return list(seen)


def load_plugin(plugin: str, setting: str, registry=None) -> None:
    """Import ``plugin`` (``MODULE``, or ``MODULE:NAME`` whose ``NAME`` is then registered in ``registry``,
    default: the process's default registry; a family of the same class already registered under its name is
    left as it is). Any failure is a :class:`PluginError` naming ``plugin`` and ``setting``; Ctrl-C is not
    caught."""
    module_name, _, attr = plugin.partition(":")
    if not module_name.replace(".", "").replace("_", "").isalnum() or module_name.startswith(".") \
            or ".." in module_name or (attr and not attr.isidentifier()):
        raise PluginError(plugin, setting, "not a module name (MODULE or MODULE:NAME, e.g. my_package.families)")
    try:
        module = importlib.import_module(module_name)
        if attr:
            _register(getattr(module, attr), registry)
    except (KeyboardInterrupt, PluginError):
        raise
    except BaseException as e:  # noqa: B036 -- a user module may fail in any way (SystemExit from argparse, ...)
        if isinstance(e, ModuleNotFoundError) and e.name == module_name:
            reason = f"no module named {module_name!r} on the Python path (is its package installed, or its " \
                     "folder on PYTHONPATH?)"
        elif isinstance(e, SystemExit):
            reason = f"it exited with status {short_repr(e.code)} while being imported"
        else:
            reason = f"{type(e).__name__}: {short_text(e, 300)}" if str(e) else type(e).__name__
        raise PluginError(plugin, setting, reason) from e


def _register(obj, registry) -> None:
    registry = registry or default_registry()
    cls = obj if isinstance(obj, type) else type(obj)
    name = getattr(obj, "name", None)
    if isinstance(name, str) and name in registry.names():
        try:
            if type(registry.get(name)) is cls:
                return  # named twice (e.g. by --plugin and TASKGEN_PLUGINS): already there
        except (KeyError, ImportError):
            pass
    registry.register(obj)


def load_plugins(plugins, setting: str, registry=None) -> None:
    """Load every plugin of ``plugins`` in order (see :func:`load_plugin`)."""
    for plugin in _unique(plugins):
        load_plugin(plugin, setting, registry)


def use_plugins(option_plugins=()) -> None:
    """What the command line does before any command: load the plugins of ``TASKGEN_PLUGINS``, then those of
    ``--plugin``, and add the latter to ``TASKGEN_PLUGINS`` so that child processes (Ray workers, subprocesses)
    load them too."""
    from_env = env_plugins()
    load_plugins(from_env, PLUGINS_ENV)
    load_plugins(option_plugins, PLUGIN_OPTION)
    merged = _unique([*from_env, *option_plugins])
    if merged:
        os.environ[PLUGINS_ENV] = ",".join(merged)


def default_registry() -> Registry:
    """The process-wide registry (built-ins + entry points + whatever :func:`register_family` added).

    When it is first made in a process it loads the plugins named by ``TASKGEN_PLUGINS``
    (:func:`env_plugins`), so that a process started by the toolkit (a Ray worker, a subprocess) knows the
    families its parent loaded; a plugin that cannot be loaded is a :class:`PluginError` (and the
    next use tries again)."""
    global _DEFAULT
    if _DEFAULT is None:
        registry = _DEFAULT = Registry()
        try:
            load_plugins(env_plugins(), PLUGINS_ENV, registry)
        except BaseException:
            if _DEFAULT is registry:
                _DEFAULT = None
            raise
        return registry
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
