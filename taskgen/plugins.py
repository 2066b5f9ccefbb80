"""Loading user families into a process: ``taskgen --plugin MODULE`` and the ``TASKGEN_PLUGINS`` variable.

A *plugin* is a Python module (importable from ``sys.path``) named in one of two ways:

* ``MODULE`` (e.g. ``my_package.families``): the module is imported; it registers its families itself by calling
  :func:`taskgen.register_family` at import.
* ``MODULE:NAME`` (e.g. ``my_package.families:SoftmaxRegressionFamily``): the module is imported and ``NAME`` (a
  :class:`taskgen.Family` subclass or instance) is registered in the default registry; the module needs no
  registration code of its own.

``TASKGEN_PLUGINS`` holds comma-separated plugins. The default registry imports them the first time it is used in
a process (:func:`taskgen.registry.default_registry`), so a process started by the toolkit (a Ray worker, a
subprocess) sees the same families as its parent as long as it inherits the variable; ``taskgen --plugin`` adds
its plugins to the variable for that reason. A plugin that cannot be imported is a :class:`PluginError` naming the
plugin and the setting it came from. Installed packages can skip all this by exposing their families under the
``taskgen.families`` entry-point group (found without any setting).
"""

from __future__ import annotations

import importlib
import os

from families.errors import short_repr, short_text

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
    from taskgen.registry import default_registry

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
