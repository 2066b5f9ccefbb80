"""taskgen: sample, freeze, query and build machine-learning training tasks for learned-optimizer research.

Public API: :class:`TaskSpec`, the family registry (:func:`register_family`, :func:`get_family`,
:func:`family_names`), suite generation (:func:`generate_suite`), spec files (:func:`write_specs`,
:func:`read_specs`, :func:`load_specs`), the Arrow manifest (:func:`write_manifest`, :func:`load_manifest`) and
:func:`build_task`, plugins (:func:`load_plugins`, ``TASKGEN_PLUGINS``) and :func:`check_family`. The family contract (:class:`Family`, :class:`Task`, :class:`Cost`) is re-exported from
``families.base``.

Importing ``taskgen`` is cheap: each name is imported from its module on first use (so the command line and
``import taskgen`` do not pay for pyarrow or the families until they are needed).
"""

__version__ = "0.1.0"

from taskgen import xla_cpu as _xla_cpu  # noqa: E402  (before JAX starts: see the module)

_xla_cpu.apply()

from typing import TYPE_CHECKING  # noqa: E402

_EXPORTS = {
    "SPLITS": "families.base", "ConfigError": "families.errors", "Cost": "families.base",
    "Family": "families.base", "Task": "families.base",
    "build_task": "taskgen.api", "default_manifest_path": "taskgen.api", "default_suite_path": "taskgen.api",
    "load_specs": "taskgen.api", "resolve_spec": "taskgen.api", "ArgumentTypeError": "taskgen.arguments",
    "FamilyCheckError": "taskgen.family_check", "FamilyCheckReport": "taskgen.family_check",
    "check_family": "taskgen.family_check", "PluginError": "taskgen.registry", "load_plugins": "taskgen.registry",
    "filter_manifest": "taskgen.manifest", "load_manifest": "taskgen.manifest",
    "specs_from_manifest": "taskgen.manifest", "write_manifest": "taskgen.manifest",
    "DuplicateFamilyError": "taskgen.registry", "Registry": "taskgen.registry",
    "UnknownFamilyError": "taskgen.registry", "default_registry": "taskgen.registry",
    "family_names": "taskgen.registry", "get_family": "taskgen.registry", "register_family": "taskgen.registry",
    "TaskSpec": "taskgen.spec", "canonical_json": "taskgen.spec",
    "SpecFileError": "taskgen.specfile", "read_specs": "taskgen.specfile", "write_specs": "taskgen.specfile",
    "generate_suite": "taskgen.suite",
}

__all__ = [
    "ArgumentTypeError", "ConfigError", "Cost", "DuplicateFamilyError", "Family", "FamilyCheckError",
    "FamilyCheckReport", "PluginError", "Registry", "SPLITS", "SpecFileError", "Task", "TaskSpec",
    "UnknownFamilyError", "build_task", "canonical_json", "check_family", "default_manifest_path",
    "default_registry", "default_suite_path", "family_names", "filter_manifest", "generate_suite", "get_family",
    "load_manifest", "load_plugins", "load_specs", "read_specs", "register_family", "resolve_spec",
    "specs_from_manifest", "write_manifest", "write_specs",
]


if TYPE_CHECKING:  # the real imports, for editors and type checkers (at run time: on first use)
    from families.base import Cost, Family, SPLITS, Task  # noqa: F401
    from families.errors import ConfigError  # noqa: F401
    from taskgen.api import (build_task, default_manifest_path, default_suite_path, load_specs,
        resolve_spec)  # noqa: F401
    from taskgen.arguments import ArgumentTypeError  # noqa: F401
    from taskgen.family_check import FamilyCheckError, FamilyCheckReport, check_family  # noqa: F401
    from taskgen.manifest import filter_manifest, load_manifest, specs_from_manifest, write_manifest  # noqa: F401
    from taskgen.registry import (DuplicateFamilyError, PluginError, Registry, UnknownFamilyError, default_registry,
        family_names, get_family, load_plugins, register_family)  # noqa: F401
    from taskgen.spec import TaskSpec, canonical_json  # noqa: F401
    from taskgen.specfile import SpecFileError, read_specs, write_specs  # noqa: F401
    from taskgen.suite import generate_suite  # noqa: F401


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'taskgen' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
