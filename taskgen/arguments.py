"""Checks of the arguments of the public functions: a wrong type is the toolkit's own :class:`ArgumentTypeError`
(a ``TypeError``) naming the function, the argument and what it accepts, not an ``AttributeError`` from inside."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable

from families.errors import short_repr


class ArgumentTypeError(TypeError):
    """An argument of a public taskgen function of a type it does not accept."""


def _kind(value) -> str:
    return f"{type(value).__name__} {short_repr(value)}"


def is_path(value) -> bool:
    """Whether ``value`` names a file: a ``str`` or an ``os.PathLike``."""
    return isinstance(value, (str, os.PathLike))


def check_path(function: str, name: str, value) -> None:
    """:class:`ArgumentTypeError` unless ``value`` is a ``str`` or ``os.PathLike``."""
    if not is_path(value):
        raise ArgumentTypeError(f"{function}(): {name} must be a file path (str or os.PathLike), got {_kind(value)}")


def spec_list(function: str, value) -> list:
    """``value`` (an iterable of :class:`TaskSpec`) as a list; :class:`ArgumentTypeError` naming the first item that
    is not a spec."""
    from taskgen.spec import TaskSpec

    if isinstance(value, (str, bytes, TaskSpec)) or not isinstance(value, Iterable):
        raise ArgumentTypeError(f"{function}(): specs must be an iterable of TaskSpec, got {_kind(value)}")
    specs = list(value)
    for i, spec in enumerate(specs):
        if not isinstance(spec, TaskSpec):
            raise ArgumentTypeError(f"{function}(): specs[{i}] is {_kind(spec)}, not a TaskSpec (make one with "
                                    "TaskSpec.create, TaskSpec.from_dict or TaskSpec.from_json)")
    return specs


def specs_then_path(function: str, specs, path):
    """``(specs, path)`` for a writer whose order is ``(specs, path)``; the order ``(path, specs)`` of earlier
    releases is recognised by its types, accepted with a ``DeprecationWarning`` and swapped."""
    if is_path(specs) and not is_path(path):
        warnings.warn(f"{function}(path, specs) is deprecated: call {function}(specs, path), the order of "
                      "write_manifest and pyarrow's write_table", DeprecationWarning, stacklevel=3)
        specs, path = path, specs
    check_path(function, "path", path)
    return spec_list(function, specs), path
