"""Finding specs by id and building them into tasks."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from families.base import ConfigError, Task
from taskgen.registry import Registry, default_registry
from taskgen.spec import TaskSpec
from taskgen.specfile import read_specs

DEFAULT_SUITE_NAME = "default-v1"


def default_suite_path() -> Path:
    """Path of the frozen default suite shipped with the package (``taskgen/suites/default-v1.jsonl``)."""
    return Path(str(resources.files("taskgen") / "suites" / f"{DEFAULT_SUITE_NAME}.jsonl"))


def load_specs(path=None, registry: Registry | None = None) -> list[TaskSpec]:
    """Specs from a spec file (JSON Lines), a manifest (Arrow IPC or Parquet, told by its magic bytes), or the
    default suite."""
    path = Path(path) if path is not None else default_suite_path()
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"ARROW1" or magic[:4] == b"PAR1":  # a manifest, whatever its file name
        from taskgen.manifest import load_manifest, specs_from_manifest

        return specs_from_manifest(load_manifest(path))
    return read_specs(path, registry=registry)


def resolve_spec(task_id: str, suite=None, registry: Registry | None = None) -> TaskSpec:
    """The spec with ``task_id`` in ``suite`` (a spec file or manifest; default: the shipped default suite).

    A unique prefix of an id is accepted. Raises ``KeyError`` with a clear message when nothing or several match.
    """
    specs = load_specs(suite, registry=registry)
    exact = [s for s in specs if s.task_id == task_id]
    matches = exact or [s for s in specs if s.task_id.startswith(task_id)]
    where = suite or default_suite_path()
    if not matches:
        raise KeyError(f"no task {task_id!r} in {where} ({len(specs)} specs); `taskgen list` shows the ids")
    if len(matches) > 1:
        raise KeyError(f"{task_id!r} matches {len(matches)} tasks in {where}: "
                       f"{', '.join(s.task_id for s in matches[:5])}...")
    return matches[0]


def build_task(spec: TaskSpec, registry: Registry | None = None) -> Task:
    """Validate ``spec`` against its family (name and version) and build it into a :class:`Task`."""
    registry = registry or default_registry()
    family = registry.get(spec.family)
    if spec.family_version != family.version:
        raise ConfigError("family_version", f"spec has {spec.family} version {spec.family_version}, "
                                            f"this toolkit has version {family.version}")
    family.validate(spec.config)
    return family.build(spec)
