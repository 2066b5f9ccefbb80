"""The command line's one error boundary: what the user did wrong becomes one line, not a traceback.

:func:`error_boundary` turns

* the toolkit's own errors (bad specs, manifests, configs, unknown families, dataset errors, ``ValueError``),
* OS errors on the user's paths (missing, read-only, permission, no space: the message names the path), and
* decode errors of damaged files (pyarrow, msgpack, zipfile, JSON, UTF-8): ``cannot read <path>: damaged …``,
* encode errors, told apart from decode errors by where they were raised (a value that a writer cannot store,
  e.g. ``json.dumps(nan, allow_nan=False)``): ``cannot write <path>: a value cannot be stored …``

into ``Error: <what> <path>: <reason>`` on stderr with exit status 1 (a library's message is cut, so a message
quoting data stays one readable line). Usage errors keep click's exit status 2. Ctrl-C (``KeyboardInterrupt``)
ends any command with ``Interrupted`` and exit status 130, the shell's convention for SIGINT. With
``taskgen --debug`` or ``TASKGEN_DEBUG=1`` the exception propagates with its traceback. Nothing here imports more
than the standard library, click and :mod:`families.errors`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re

import click

from families.errors import short_text

_OS_WHAT = {
    errno.ENOENT: "no such file or folder", errno.EACCES: "no permission for", errno.EPERM: "no permission for",
    errno.EROFS: "read-only file system at", errno.ENOSPC: "no space left to write",
    errno.EDQUOT: "disk quota exceeded writing", errno.EISDIR: "is a folder:",
    errno.ENOTDIR: "not a folder on the path", errno.EEXIST: "already exists:",
}

_DECODE_MODULES = ("pyarrow", "msgpack", "zipfile", "json", "numpy.lib", "flax.serialization")
_PATH_NAMES = ("path", "filename", "file", "fname", "source", "theta_path", "out_dir", "out")
# Functions of the codec modules above that write (serialise) rather than read: an error raised inside one is an
# encode error (a value the format cannot hold), not a damaged file.
_ENCODE_FUNCTION = re.compile(r"^_*(dumps?|(iter)?encode|packb?|serialize|msgpack_serialize|to_bytes|save|savez"
                              r"|savez_compressed|write\w*|new_file|to_state_dict)$")
_ENCODE_MODULES = ("json.encoder",)
EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells report a process ended by SIGINT."""
MESSAGE_LIMIT = 2000
"""Most characters of a library's error message that an ``Error:`` line repeats."""


class ToolkitError(click.ClickException):
    """An error shown to the user as ``Error: <message>``, exit status 1."""

    exit_code = 1


TOOLKIT_PACKAGES = ("taskgen", "families", "datasets_cache")
"""The packages whose exception classes are errors a user can act on (a package above adds its own to the
boundary it opens)."""


def _is_toolkit_error(e: BaseException, packages=TOOLKIT_PACKAGES) -> bool:
    # The toolkit's own exception classes, told by their defining package (no imports needed).
    return any(c.__module__.split(".")[0] in packages and c is not Exception for c in type(e).__mro__[:-2])


def _is_encode_error(e: BaseException) -> bool:
    """Whether ``e`` was raised while serialising (a codec module's writing function is on its traceback, or it is
    one of msgpack's ``Pack…`` errors): a value the format cannot hold, not a damaged file."""
    if isinstance(e, UnicodeEncodeError) or type(e).__name__.startswith("Pack"):
        return True
    tb = e.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        module = str(frame.f_globals.get("__name__", ""))
        if module.startswith(_ENCODE_MODULES) or (module.startswith(_DECODE_MODULES)
                                                   and _ENCODE_FUNCTION.match(frame.f_code.co_name)):
            return True
        tb = tb.tb_next
    return False


def _is_codec_error(e: BaseException) -> bool:
    """Whether ``e`` comes from a file format's codec (reading or writing)."""
    if isinstance(e, (UnicodeError, EOFError)):
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


def _is_decode_error(e: BaseException) -> bool:
    return _is_codec_error(e) and not _is_encode_error(e)


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


def describe(e: BaseException, packages=TOOLKIT_PACKAGES) -> str | None:
    """The one-line message for ``e`` (without ``Error:``), or None if ``e`` is not one the boundary handles
    (``packages``: whose exception classes count as the toolkit's own)."""
    if isinstance(e, OSError) and not _is_decode_error(e):
        path = e.filename if e.filename is not None else _path_in_traceback(e)
        what = _OS_WHAT.get(e.errno, "cannot use")
        reason = e.strerror or str(e)
        if path is None:
            return f"{what}: {reason}"
        target = f" -> {e.filename2}" if e.filename2 else ""
        return f"{what} {path}{target}: {reason}"
    if _is_codec_error(e):
        path = _path_in_traceback(e)
        where = f" {path}" if path else ""
        if _is_encode_error(e):
            return f"cannot write{where}: a value cannot be stored in this format ({type(e).__name__}: " \
                   f"{short_text(e, MESSAGE_LIMIT)})"
        return f"cannot read{where}: damaged or not the expected format ({type(e).__name__}: " \
               f"{short_text(e, MESSAGE_LIMIT)})"
    if _is_toolkit_error(e, packages) or isinstance(e, (ValueError, KeyError)):
        text = e.args[0] if isinstance(e, KeyError) and len(e.args) == 1 and isinstance(e.args[0], str) else str(e)
        return short_text(text, MESSAGE_LIMIT) or type(e).__name__
    return None


@contextlib.contextmanager
def error_boundary(debug: bool = False, packages=TOOLKIT_PACKAGES):
    """Run a command body; turn the errors a user can act on into :class:`ToolkitError` (see the module doc);
    ``packages``: whose exception classes count as the toolkit's own."""
    try:
        yield
    except KeyboardInterrupt:
        _interrupted(debug)
    except click.Abort as e:  # click's prompts turn Ctrl-C into Abort
        if isinstance(e.__context__, KeyboardInterrupt) or isinstance(e.__cause__, KeyboardInterrupt):
            _interrupted(debug)
        raise
    except (click.ClickException, click.exceptions.Exit, SystemExit):
        raise
    except BrokenPipeError:
        if not _stdout_closed():
            raise ToolkitError("a pipe closed while writing (not stdout)") from None
        _reader_left()
    except Exception as e:
        message = None if debug else describe(e, packages)
        if message is None:
            raise
        raise ToolkitError(message) from None


def _stdout_closed() -> bool:
    """Whether the reader of stdout went away: its pipe reports an error (``POLLERR``) once the read end is
    closed; True too where that cannot be asked (not a pipe descriptor, no ``poll``): then stdout was the pipe."""
    import select
    import sys

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return True


def _reader_left():
    """End quietly when the reader of stdout went away (``taskgen list | head``): the shell's convention, no error
    line. stdout is pointed at /dev/null so that Python's own flush at exit does not fail again."""
    import os
    import sys

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a descriptor (captured): nothing to redirect
        pass
    raise click.exceptions.Exit(0)


def _interrupted(debug: bool):
    """End the command after Ctrl-C: ``Interrupted`` on stderr (the traceback too with ``--debug``), exit 130."""
    if debug:
        import traceback

        traceback.print_exc()
    click.echo("Interrupted", err=True)
    raise click.exceptions.Exit(EXIT_INTERRUPTED)
