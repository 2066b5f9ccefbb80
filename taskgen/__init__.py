"""taskgen: sample, freeze, query and build machine-learning training tasks for learned-optimizer research.

Public API: :class:`TaskSpec`, the family registry (:func:`register_family`, :func:`get_family`,
:func:`family_names`), suite generation (:func:`generate_suite`), spec files (:func:`write_specs`,
:func:`read_specs`, :func:`load_specs`), the Arrow manifest (:func:`write_manifest`, :func:`load_manifest`) and
:func:`build_task`. The family contract (:class:`Family`, :class:`Task`, :class:`Cost`) is re-exported from
``families.base``.
"""

__version__ = "0.1.0"

from families.base import SPLITS, ConfigError, Cost, Family, Task
from taskgen.api import build_task, default_suite_path, load_specs, resolve_spec
from taskgen.manifest import filter_manifest, load_manifest, specs_from_manifest, write_manifest
from taskgen.registry import (DuplicateFamilyError, Registry, UnknownFamilyError, default_registry, family_names,
                              get_family, register_family)
from taskgen.spec import TaskSpec, canonical_json
from taskgen.specfile import SpecFileError, read_specs, write_specs
from taskgen.suite import generate_suite

__all__ = [
    "SPLITS", "ConfigError", "Cost", "DuplicateFamilyError", "Family", "Registry", "SpecFileError", "Task",
    "TaskSpec", "UnknownFamilyError", "build_task", "canonical_json", "default_registry", "default_suite_path",
    "family_names", "filter_manifest", "generate_suite", "get_family", "load_manifest", "load_specs",
    "read_specs", "register_family", "resolve_spec", "specs_from_manifest", "write_manifest", "write_specs",
]
