"""Spec files: JSON Lines, one canonical spec per line, written atomically, read with line-numbered errors."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from families.base import ConfigError
from taskgen.spec import TaskSpec


class SpecFileError(ValueError):
    """A spec file line that cannot be read; names the file, the line and the problem."""

    def __init__(self, path, line: int, message: str):
        self.path, self.line = str(path), line
        super().__init__(f"{path}:{line}: {message}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory and ``os.replace``: readers see the old
    file or the new one, never a partial one; on error nothing is left behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def specs_to_jsonl(specs: Iterable[TaskSpec]) -> bytes:
    """The JSON Lines bytes of ``specs`` (canonical JSON, ``\\n`` after every line)."""
    return "".join(s.to_json() + "\n" for s in specs).encode()


def write_specs(path, specs: Iterable[TaskSpec]) -> int:
    """Atomically write ``specs`` to ``path``; returns the number written. Duplicate task ids are an error."""
    specs = list(specs)
    seen = set()
    for s in specs:
        if s.task_id in seen:
            raise ValueError(f"duplicate task id {s.task_id} in the specs to write")
        seen.add(s.task_id)
    atomic_write_bytes(path, specs_to_jsonl(specs))
    return len(specs)


def read_specs(path, registry=None, validate: bool = True) -> list[TaskSpec]:
    """Read a spec file. Each line must parse, carry a matching ``task_id``, name a known family of the stored
    version and (if ``validate``) pass that family's validation; otherwise :class:`SpecFileError` names the line."""
    from taskgen.registry import UnknownFamilyError, default_registry

    registry = registry or default_registry()
    specs, seen = [], {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SpecFileError(path, 0, f"not UTF-8 text: {e}") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            spec = TaskSpec.from_json(line)
            if validate:
                family = registry.get(spec.family)
                if spec.family_version != family.version:
                    raise ConfigError("family_version", f"{spec.family_version} but this toolkit has "
                                                        f"{spec.family} version {family.version}")
                family.validate(spec.config)
        except (ConfigError, UnknownFamilyError) as e:
            raise SpecFileError(path, lineno, str(e)) from None
        if spec.task_id in seen:
            raise SpecFileError(path, lineno, f"duplicate task id {spec.task_id} (first on line {seen[spec.task_id]})")
        seen[spec.task_id] = lineno
        specs.append(spec)
    return specs
