"""The command line's one error boundary: what the user did wrong becomes one line, not a traceback.

:func:`error_boundary` turns

* the toolkit's own errors (bad specs, manifests, configs, unknown families, dataset errors, ``ValueError``),
* OS errors on the user's paths (missing, read-only, permission, no space: the message names the path), and
* decode errors of damaged files (pyarrow, msgpack, zipfile, JSON, UTF-8)

into ``Error: <what> <path>: <reason>`` on stderr with exit status 1. Usage errors keep click's exit status 2.
With ``taskgen --debug`` or ``TASKGEN_DEBUG=1`` the exception propagates with its traceback. Nothing here imports
more than the standard library and click.
"""

from __future__ import annotations

import contextlib
import errno
import os

import click

_OS_WHAT = {
    errno.ENOENT: "no such file or folder", errno.EACCES: "no permission for", errno.EPERM: "no permission for",
    errno.EROFS: "read-only file system at", errno.ENOSPC: "no space left to write",
    errno.EDQUOT: "disk quota exceeded writing", errno.EISDIR: "is a folder:",
    errno.ENOTDIR: "not a folder on the path", errno.EEXIST: "already exists:",
}

_DECODE_MODULES = ("pyarrow", "msgpack", "zipfile", "json", "numpy.lib", "flax.serialization")
_PATH_NAMES = ("path", "filename", "file", "fname", "source", "theta_path", "out_dir", "out")


class ToolkitError(click.ClickException):
    """An error shown to the user as ``Error: <message>``, exit status 1."""

    exit_code = 1


def _is_toolkit_error(e: BaseException) -> bool:
    # The toolkit's own exception classes, told by their defining package (no imports needed).
    return any(c.__module__.split(".")[0] in ("taskgen", "families", "datasets_cache", "lopt_trainer")
               and c is not Exception for c in type(e).__mro__[:-2])


def _is_decode_error(e: BaseException) -> bool:
    if isinstance(e, (UnicodeDecodeError, EOFError)):
        return True
    if any(c.__module__.startswith(_DECODE_MODULES) for c in type(e).__mro__[:-2]):
        return True
    if isinstance(e, ValueError):  # a plain ValueError raised inside a decoder's Python code
        tb = e.__traceback__
        while tb is not None:
            if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(_DECODE_MODULES):
                return True
            tb = tb.tb_next
    return False


def _path_in_traceback(e: BaseException) -> str | None:
    """The innermost frame's local naming a file (``path``, ``filename``, …): the file being read."""
    tb, found = e.__traceback__, None
    while tb is not None:
        local = tb.tb_frame.f_locals
        for name in _PATH_NAMES:
            value = local.get(name)
            if isinstance(value, (str, os.PathLike)) and str(value):
                found = os.fspath(value)
                break
        tb = tb.tb_next
    return found


def describe(e: BaseException) -> str | None:
    """The one-line message for ``e`` (without ``Error:``), or None if ``e`` is not one the boundary handles."""
    if isinstance(e, OSError) and not _is_decode_error(e):
        path = e.filename if e.filename is not None else _path_in_traceback(e)
        what = _OS_WHAT.get(e.errno, "cannot use")
        reason = e.strerror or str(e)
        if path is None:
            return f"{what}: {reason}"
        target = f" -> {e.filename2}" if e.filename2 else ""
        return f"{what} {path}{target}: {reason}"
    if _is_decode_error(e):
        path = _path_in_traceback(e)
        where = f" {path}" if path else ""
        return f"cannot read{where}: damaged or not the expected format ({type(e).__name__}: {e})"
    if _is_toolkit_error(e) or isinstance(e, (ValueError, KeyError)):
        text = e.args[0] if isinstance(e, KeyError) and len(e.args) == 1 and isinstance(e.args[0], str) else str(e)
        return text or type(e).__name__
    return None


@contextlib.contextmanager
def error_boundary(debug: bool = False):
    """Run a command body; turn the errors a user can act on into :class:`ToolkitError` (see the module doc)."""
    try:
        yield
    except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:
        message = None if debug else describe(e)
        if message is None:
            raise
        raise ToolkitError(message) from None
