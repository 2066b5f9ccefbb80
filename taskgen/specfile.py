"""Spec files: JSON Lines, one canonical spec per line, written atomically, read with line-numbered errors."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from families.base import ConfigError
from families.errors import short_text
from taskgen.spec import TaskSpec


class SpecFileError(ValueError):
    """A spec file line that cannot be read; names the file, the line and the problem."""

    def __init__(self, path, line, message: str):
        self.path, self.line, self.reason = str(path), line, message
        super().__init__(f"{path}:{line}: {message}" if isinstance(line, int) else f"{path}: {line}: {message}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class NotRegularFileError(ValueError):
    """A path given as an input file names a device, a FIFO, a socket or a folder: nothing is read from it."""


def check_regular_file(path) -> Path:
    """``path`` as a ``Path`` when it names a regular file (after symlinks), without opening it.

    Raises:
      FileNotFoundError: nothing is there.
      IsADirectoryError: it is a folder.
      NotRegularFileError: a device (``/dev/zero``), a FIFO or a socket, which could block or never end.
    """
    path = Path(path)
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    if not stat.S_ISREG(mode):
        kind = ("a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
                else "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "not a regular file")
        raise NotRegularFileError(f"{path}: is {kind}, not a regular file; give a file")
    return path


def read_file_bytes(path) -> bytes:
    """The bytes of the regular file at ``path`` (:func:`check_regular_file` first, so a device or a FIFO is
    refused at once instead of read until memory runs out or forever)."""
    return check_regular_file(path).read_bytes()


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory and ``os.replace``: readers see the old
    file or the new one, never a partial one; on error nothing is left behind.

    An ``OSError`` (read-only, permission, no space, …) is raised with ``filename`` set to ``path``, the user's
    file, not the hidden temporary one."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename != str(path):
            raise type(e)(e.errno, e.strerror or str(e), str(path)) from e
        raise


def specs_to_jsonl(specs: Iterable[TaskSpec]) -> bytes:
    """The JSON Lines bytes of ``specs`` (canonical JSON, ``\\n`` after every line)."""
    return "".join(s.to_json() + "\n" for s in specs).encode()


def write_specs(specs: Iterable[TaskSpec], path) -> int:
    """Atomically write ``specs`` to the spec file ``path`` (JSON Lines); returns the number written. Duplicate task
    ids are an error.

    The order is that of :func:`taskgen.write_manifest` and ``pyarrow.parquet.write_table``: data first, then
    where. The order of earlier releases, ``write_specs(path, specs)``, still works for this release with a
    ``DeprecationWarning`` (told apart by the arguments' types). A wrong type is an
    :class:`taskgen.arguments.ArgumentTypeError` (a ``TypeError``) naming the argument."""
    from taskgen.arguments import specs_then_path

    specs, path = specs_then_path("write_specs", specs, path)
    seen = set()
    for s in specs:
        if s.task_id in seen:
            raise ValueError(f"duplicate task id {s.task_id} in the specs to write")
        seen.add(s.task_id)
    atomic_write_bytes(path, specs_to_jsonl(specs))
    return len(specs)


def read_specs(path, registry=None, validate: bool = True) -> list[TaskSpec]:
    """Read a spec file. Each line must parse, carry a matching ``task_id``, name a known family of the stored
    version and (if ``validate``) pass that family's validation; otherwise :class:`SpecFileError` names the line.

    Lines end at ``\\n`` only (what :func:`write_specs` writes; U+2028 and friends inside strings are content). A
    file without any spec line is refused.
    """
    try:
        data = read_file_bytes(path)
    except IsADirectoryError:
        raise SpecFileError(path, 0, "is a directory, not a spec file") from None
    specs = parse_spec_lines(data.split(b"\n"), path, registry, validate)
    if not specs:
        raise SpecFileError(path, 1, "no spec lines: the file is empty (a suite needs at least one spec)")
    return specs


def parse_spec_lines(lines, path, registry=None, validate: bool = True, what: str = "") -> list[TaskSpec]:
    """Specs from spec lines (``bytes`` or ``str``; blank lines skipped), checked as :func:`read_specs` does; an
    error names ``path`` and the 1-based line (``what`` names the unit for other sources, e.g. ``"row "``)."""
    from taskgen.registry import default_registry

    registry = registry or default_registry()
    checker = _FamilyChecker(registry) if validate else None
    specs, seen = [], {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{what}{lineno}" if what else lineno
        try:
            spec = TaskSpec.from_json(line)
            if checker is not None:
                checker.check(spec)
        except ConfigError as e:
            raise SpecFileError(path, where, str(e)) from None
        if spec.task_id in seen:
            raise SpecFileError(path, where,
                                f"duplicate task id {spec.task_id} (first on {what or 'line '}{seen[spec.task_id]})")
        seen[spec.task_id] = lineno
        specs.append(spec)
    return specs


class _FamilyChecker:
    """Checks a spec against its family (known name, same version, valid config) as :class:`ConfigError`."""

    def __init__(self, registry):
        self.registry = registry
        self.families = {}

    def family(self, name: str, version: int):
        """The family ``name`` of ``version``, or :class:`ConfigError` saying why not."""
        from taskgen.registry import FamilyUnavailableError, UnknownFamilyError

        family = self.families.get(name)
        if family is None:
            try:
                family = self.families[name] = self.registry.get(name)
            except (UnknownFamilyError, FamilyUnavailableError) as e:
                raise ConfigError("family", str(e)) from None
        if version != family.version:
            raise ConfigError("family_version", f"{version} but this toolkit has {name} version {family.version}")
        return family

    def check(self, spec: TaskSpec) -> None:
        """Raise :class:`ConfigError` unless ``spec`` is valid for its family."""
        family = self.family(spec.family, spec.family_version)
        try:
            family.validate(spec.config)
        except ConfigError:
            raise
        except (TypeError, KeyError, IndexError, AttributeError, ValueError, ArithmeticError, RecursionError) as e:
            raise ConfigError("config", f"family {spec.family!r} could not check this config "
                                        f"({type(e).__name__}: {short_text(e, 300)})") from None
