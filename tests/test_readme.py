"""Every code block of the README and of ``docs/`` works when copied, from a folder outside the repository.

* ```python blocks run, each in its own interpreter, with the current folder a fresh temporary one.
* ```bash blocks pass ``bash -n``; every ``taskgen …`` line names commands and options that exist (checked
  against the click tree, without running it), and the cheap, read-only ones (:data:`RUN_CHEAP`) run.
* A block whose first line is ``# not run: <why>`` is skipped, with its reason: the only way to leave one out.
"""

import os
import pathlib
import re
import shlex
import subprocess
import sys

import click
import pytest

from taskgen_cli import cli

REPO = pathlib.Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = [README, *sorted((REPO / "docs").glob("*.md"))]
"""The pages whose blocks are checked."""
RUN_ELSEWHERE = ("docs/your_family.md",)
"""Pages whose commands build on each other: ``tests/test_tutorial.py`` runs them all, in order."""
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
NOT_RUN = re.compile(r"^#\s*not run:\s*(\S.*)$")
RUN_CHEAP = {("families",), ("list",), ("show",), ("lopt", "settings"), ("data", "list")}
"""Command paths whose README lines run: they read the shipped suite or settings and write nothing."""


def _blocks(lang: str, pages=None) -> list[tuple[str, str]]:
    """``("page:line", code)`` of every fenced block of ``lang`` in ``pages`` (default: :data:`DOCS`)."""
    out = []
    for page in pages or DOCS:
        text = page.read_text()
        out += [(f"{page.relative_to(REPO)}:{text[:m.start()].count(chr(10)) + 1}", m.group(2))
                for m in FENCE.finditer(text) if m.group(1) == lang]
    return out


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")


def _skip_reason(code: str) -> str | None:
    first = code.lstrip().splitlines()[0] if code.strip() else ""
    m = NOT_RUN.match(first)
    return m.group(1) if m else None


def test_the_readme_has_the_blocks_this_test_runs():
    assert len(_blocks("python", [README])) >= 4 and len(_blocks("bash", [README])) >= 2
    assert len(README.read_bytes()) <= 15_000  # the front door fits on a few screens; the rest is in docs/


@pytest.mark.parametrize("line,code", _blocks("python"), ids=lambda v: v if ":" in v[:60] and "\n" not in v else "")
def test_python_block_runs_from_another_folder(line, code, tmp_path):
    reason = _skip_reason(code)
    if reason:
        pytest.skip(f"{line}: not run: {reason}")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, f"{line}:\n{code}\n{res.stderr[-3000:]}"


def _taskgen_lines(code: str) -> list[list[str]]:
    """The argument lists of the ``taskgen …`` lines of a bash block (comments, ``[optional]`` brackets, ``|``
    alternatives and ``...`` placeholders removed)."""
    out = []
    for raw in code.splitlines():
        line = raw.split(" #")[0].strip()
        if not line.startswith("taskgen "):
            continue
        tokens = [t.strip("[]") for t in shlex.split(line)[1:]]
        out.append([t for t in tokens if t and t not in ("|", "...")])
    return out


def _resolve(args: list[str]) -> tuple[click.Command, tuple[str, ...], list[str]]:
    """The click command an argument list reaches, its path and the remaining arguments (a group's own options,
    such as ``taskgen --plugin M``, are checked and skipped on the way)."""
    command, path = cli, ()
    ctx = click.Context(cli)
    while isinstance(command, click.Group) and args:
        if args[0].startswith("-"):
            name = args[0].split("=")[0]
            opt = next((p for p in command.params if name in (*p.opts, *p.secondary_opts)), None)
            assert opt is not None, f"taskgen {' '.join(path)} has no {name}"
            takes_value = not (getattr(opt, "is_flag", False) or getattr(opt, "count", False)) and "=" not in args[0]
            args = args[2 if takes_value else 1:]
            continue
        sub = command.get_command(ctx, args[0])
        assert sub is not None, f"no command {' '.join(path + (args[0],))}"
        command, path, args = sub, path + (args[0],), args[1:]
    return command, path, args


def _unknown_options(command: click.Command, args: list[str]) -> list[str]:
    """The options of ``args`` that ``command`` does not have, as click's own parser sees them (so an option's
    value that starts with ``-``, e.g. ``--sort -params``, is a value)."""
    parser = command.make_parser(click.Context(command))
    try:
        parser.parse_args(list(args))
    except click.NoSuchOption as e:
        return [e.option_name]
    except click.UsageError:  # a missing value and the like: not what this test checks
        pass
    return []


@pytest.mark.parametrize("line,code", _blocks("bash"), ids=lambda v: v if ":" in v[:60] and "\n" not in v else "")
def test_bash_block_parses_and_its_commands_exist(line, code, tmp_path):
    reason = _skip_reason(code)
    if reason:
        pytest.skip(f"{line}: not run: {reason}")
    syntax = subprocess.run(["bash", "-n"], input=code, capture_output=True, text=True)
    assert syntax.returncode == 0, f"{line}: {syntax.stderr}"
    for args in _taskgen_lines(code):
        command, path, rest = _resolve(args)
        unknown = _unknown_options(command, rest)
        assert not unknown, f"{line}: taskgen {' '.join(path)} has no {unknown[0]}"
        if path in RUN_CHEAP and not line.startswith(RUN_ELSEWHERE):
            res = subprocess.run([sys.executable, "-m", "taskgen_cli", *args], cwd=tmp_path, env=_env(),
                                 capture_output=True, text=True, timeout=300)
            assert res.returncode == 0, f"{line}: taskgen {' '.join(args)}\n{res.stderr[-2000:]}"
            assert res.stdout.strip(), f"taskgen {' '.join(args)} printed nothing"


def test_help_answers_from_another_folder(tmp_path):
    res = subprocess.run([sys.executable, "-m", "taskgen_cli", "lopt", "meta-train", "--help"], cwd=tmp_path,
                         env=_env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "--preset [recipe|quick]" in res.stdout
