"""Finding specs by id and building them into tasks."""

from __future__ import annotations

from pathlib import Path

from families.errors import ConfigError, short_repr
from taskgen.frozen import DEFAULT_SUITE_NAME, default_manifest_path, default_suite_path, frozen_record

def is_manifest(path) -> bool:
    """Whether ``path`` is an Arrow IPC or Parquet file (told by its magic bytes, whatever its name)."""
    from taskgen.specfile import check_regular_file

    with open(check_regular_file(path), "rb") as f:
        magic = f.read(6)
    return magic == b"ARROW1" or magic[:4] == b"PAR1"


def load_specs(path=None, registry=None) -> list:
    """Specs from a spec file (JSON Lines), a manifest (Arrow IPC or Parquet, told by its magic bytes), or the
    default suite. Every spec is checked against its family (name, version, config); the default suite is checked
    once, when frozen: while its bytes and its families' versions match ``default-v1.lock.json``, it is read
    without re-checking each spec."""
    if path is None and registry is None:
        frozen = _frozen_default_suite()
        if frozen is not None:
            return frozen
    path = Path(path) if path is not None else default_suite_path()
    if is_manifest(path):
        from taskgen.manifest import _read_manifest

        return _read_manifest(path, registry, want_specs=True)[1]  # the rows' specs, checked once
    from taskgen.specfile import read_specs

    return read_specs(path, registry=registry)


def _frozen_default_suite():
    """The default suite's specs without per-spec validation, when its bytes and its families' versions are
    exactly those recorded in ``default-v1.lock.json`` (the suite was validated when it was frozen, and a test
    keeps the record true); None otherwise (then the file is read and every spec checked as usual)."""
    import hashlib

    from taskgen.manifest import _versions_match
    from taskgen.registry import default_registry
    from taskgen.specfile import parse_spec_lines

    path = default_suite_path()
    lock = frozen_record()
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if lock is None or hashlib.sha256(data).hexdigest() != lock.get("sha256") or not _versions_match(lock):
        return None
    return parse_spec_lines(data.split(b"\n"), path, default_registry(), validate=False)


def load_table(source=None, registry=None):
    """The manifest table of ``source``: a manifest file as it is (the default suite's frozen manifest when
    ``source`` is None), or a spec file turned into a table."""
    from taskgen.manifest import load_manifest, manifest_table

    path = Path(source) if source is not None else default_manifest_path()
    if is_manifest(path):
        return load_manifest(path, registry)
    from taskgen.specfile import read_specs

    return manifest_table(read_specs(path, registry=registry), registry)


def resolve_spec(task_id: str, suite=None, registry=None):
    """The spec with ``task_id`` in ``suite`` (a spec file or manifest; default: the shipped default suite).

    A unique prefix of an id is accepted. Raises ``KeyError`` with a clear message when nothing or several match.
    A manifest is searched by its ``task_id`` column; only the matching row's spec JSON is parsed and checked.
    """
    path = Path(suite) if suite is not None else default_manifest_path()
    if not is_manifest(path):
        from taskgen.specfile import read_specs

        specs = read_specs(path, registry=registry)
        ids = [s.task_id for s in specs]
        return specs[_pick(task_id, ids, path)]
    import pyarrow.compute as pc

    from taskgen.arrow_values import string_scalar
    from taskgen.manifest import load_manifest, specs_from_manifest

    table = load_manifest(path, registry)
    ids = table.column("task_id")
    rows = pc.indices_nonzero(pc.equal(ids, string_scalar(task_id)))
    if len(rows) == 0:
        rows = pc.indices_nonzero(pc.starts_with(ids, task_id))
    candidates = pc.take(ids, rows).to_pylist()
    index = rows[_pick(task_id, candidates, path, total=table.num_rows)].as_py()
    return specs_from_manifest(table.slice(index, 1), registry, validate=True, path=path)[0]


def _pick(task_id: str, ids: list[str], where, total: int | None = None) -> int:
    """Index in ``ids`` of the one id equal to, or else starting with, ``task_id``; ``KeyError`` otherwise."""
    exact = [i for i, t in enumerate(ids) if t == task_id]
    matches = exact or [i for i, t in enumerate(ids) if t.startswith(task_id)]
    if not matches:
        raise KeyError(f"no task {short_repr(task_id)} in {where} ({len(ids) if total is None else total} specs); "
                       "`taskgen list` shows the ids")
    if len(matches) > 1:
        raise KeyError(f"{short_repr(task_id)} matches {len(matches)} tasks in {where}: "
                       f"{', '.join(ids[i] for i in matches[:5])}...")
    return matches[0]


def build_task(spec, registry=None, suite=None):
    """Validate ``spec`` against its family (name and version) and build it into a :class:`Task`.

    ``spec`` is a :class:`TaskSpec` or a task id (``"mlp-0872ef388cec"``, or a unique prefix of one), looked up
    in ``suite`` (a spec file or manifest; default: the shipped default suite) as :func:`resolve_spec` does.
    Another type is an :class:`taskgen.arguments.ArgumentTypeError` (a ``TypeError``) naming the argument."""
    from taskgen.arguments import ArgumentTypeError, check_path
    from taskgen.registry import default_registry
    from taskgen.spec import TaskSpec

    if isinstance(spec, str):
        if suite is not None:
            check_path("build_task", "suite", suite)
        spec = resolve_spec(spec, suite, registry)
    elif not isinstance(spec, TaskSpec):
        raise ArgumentTypeError(f"build_task(): spec must be a TaskSpec or a task id (str), got "
                                f"{type(spec).__name__} {short_repr(spec)}")
    elif suite is not None:
        raise ArgumentTypeError("build_task(): suite is only used to look up a task id; a TaskSpec needs none")
    registry = registry or default_registry()
    family = registry.get(spec.family)
    if spec.family_version != family.version:
        raise ConfigError("family_version", f"spec has {spec.family} version {spec.family_version}, "
                                            f"this toolkit has version {family.version}")
    family.validate(spec.config)
    return family.build(spec)
