"""The lazy CLI layer (issue 12) and its one error boundary (issue 11, kinds C and G)."""

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskgen import cli as cli_mod
from taskgen_cli import cli

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("jax", "flax", "optax", "pyarrow", "numpy", "pandas", "lopt_trainer", "datasets_cache")


def _modules_after(*args):
    code = ("import sys; from taskgen_cli import cli\n"
            "try:\n    cli(prog_name='taskgen', args=sys.argv[1:])\n"
            "except SystemExit:\n    pass\n"
            "print('MODULES=' + ','.join(sorted(m.split('.')[0] for m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, check=True)
    line = [x for x in out.stdout.splitlines() if x.startswith("MODULES=")][-1]
    return set(line[len("MODULES="):].split(",")), out.stdout


@pytest.mark.parametrize("args", [["--help"], ["families"]])
def test_help_and_families_do_not_import_jax(args):
    mods, out = _modules_after(*args)
    assert "jax" not in mods and "flax" not in mods and "optax" not in mods
    if args == ["--help"]:
        assert not mods & set(HEAVY) and "lopt" in out and "data" in out
        assert not re.search(r"^\s+report\s", out, re.MULTILINE)  # the lab's command: `python -m research report`


def test_the_labs_command_line_answers_help_without_jax():
    """``python -m research`` (from a checkout) lists the lab's commands, which left the installed ``taskgen``."""
    code = ("import sys; from research.cli import cli\n"
            "try:\n    cli(prog_name='python -m research', args=['--help'])\n"
            "except SystemExit:\n    pass\n"
            "print('MODULES=' + ','.join(sorted(m.split('.')[0] for m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    mods = set(out.splitlines()[-1][len("MODULES="):].split(","))
    assert "jax" not in mods and "flax" not in mods and "optax" not in mods and "pyarrow" not in mods
    for name in ("ship", "grad-quality", "implicit-reg", "self-train", "report"):
        assert re.search(rf"^\s+{name}\s", out, re.MULTILINE), name
    res = subprocess.run([sys.executable, "-m", "research", "report", "--help"], cwd=REPO, capture_output=True,
                         text=True)
    assert res.returncode == 0 and res.stdout.startswith("Usage: python -m research report [OPTIONS] DIRECTORY")


def test_list_and_show_import_no_jax_nor_pandas():
    mods, out = _modules_after("list", "--family", "mlp", "--limit", "2")
    assert "jax" not in mods and "pandas" not in mods and "mlp-" in out
    mods, out = _modules_after("show", "quadratic-83941fda3522")
    assert "jax" not in mods and "pandas" not in mods and "quadratic/normal" in out


def test_option_defaults_agree_with_the_modules_they_stand_for():
    from lopt_trainer.app import train_task as training
    from taskgen import suite

    assert cli_mod.DEFAULT_PER_FAMILY == suite.DEFAULT_PER_FAMILY and cli_mod.DEFAULT_SEED == suite.DEFAULT_SEED
    assert cli_mod.DEFAULT_HOLDOUT_FRACTION == suite.DEFAULT_HOLDOUT_FRACTION
    assert cli_mod.DEFAULT_HELD_OUT_VARIANTS == suite.DEFAULT_HELD_OUT_VARIANTS
    from lopt_trainer.app import cli as lopt_cli
    from lopt_trainer.inner import baselines

    assert lopt_cli.OPTIMIZERS is training.OPTIMIZERS  # one tuple of names, shared
    assert set(baselines._KEYS) == set(training.OPTIMIZERS) - {"lopt"}


PACKAGE_RANK = {"datasets_cache": 0, "families": 1, "taskgen": 2, "lopt_trainer": 3, "taskgen_cli": 4}
"""The packages from the bottom up: each may name (import, or write in a string) only packages below it."""
NAMED_ONLY_FROM_ABOVE = ("lopt_trainer", "taskgen_cli")
"""Package names no lower package may write at all (``taskgen`` is also the command's and the caches' name)."""


@pytest.mark.parametrize("package", sorted(PACKAGE_RANK))
def test_no_package_names_a_package_above_it_even_in_a_string(package):
    above = [p for p in NAMED_ONLY_FROM_ABOVE if PACKAGE_RANK[p] > PACKAGE_RANK[package]]
    for path in sorted((REPO / package).rglob("*.py")):
        text = path.read_text()
        for name in above:
            hits = [i + 1 for i, line in enumerate(text.splitlines()) if re.search(rf"\b{name}\b", line)]
            assert not hits, f"{path.relative_to(REPO)}:{hits[0]} names {name}, a package above {package}"


def test_no_package_cli_imports_upward():
    # lopt_trainer.app.cli, datasets_cache.cli: nothing above them; taskgen.cli names them only as lazy strings.
    # (taskgen.cli_types, the shared click number types, is below every CLI and meant for them.)
    for path in ("lopt_trainer/app/cli.py", "datasets_cache/cli.py"):
        text = (REPO / path).read_text()
        assert not re.search(r"^\s*(from|import) taskgen\.cli\b", text, re.MULTILINE), path
    assert not (REPO / "lopt_trainer" / "meta" / "cli.py").exists()
    assert not (REPO / "lopt_trainer" / "eval_cli.py").exists()


def test_families_base_and_space_do_not_import_each_other():
    assert "families.base" not in (REPO / "families" / "space.py").read_text()
    from families import base, errors, space

    assert base.ConfigError is errors.ConfigError is space.ConfigError


def test_lazy_commands_resolve():
    assert set(cli.lazy_commands) == {"data", "train", "lopt"}
    for name in cli.lazy_commands:
        res = CliRunner().invoke(cli, [name, "--help"])
        assert res.exit_code == 0 and "Usage:" in res.output, res.output
        assert "unavailable" not in res.output


def test_build_prints_losses_as_chunks_finish(tmp_path):
    from taskgen.specfile import read_specs

    suite = tmp_path / "s.jsonl"
    assert CliRunner().invoke(cli, ["sample", "--families", "quadratic", "--per-family", "2", "-o",
                                    str(suite)]).exit_code == 0
    spec = read_specs(suite)[0]
    res = CliRunner().invoke(cli, ["build", spec.task_id, "--suite", str(suite), "--steps", "25", "--lr", "0.01"])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 0 and [int(x.split()[1]) for x in lines] == list(range(0, 25, 2)) + [24]
    res_json = CliRunner().invoke(cli, ["build", spec.task_id, "--suite", str(suite), "--steps", "25", "--lr",
                                        "0.01", "--json"])
    from taskgen.api import build_task
    from taskgen.quickstep import adam_trace

    loss = json.loads(res_json.output)["loss"]
    assert len(loss) == 25 and loss == pytest.approx(adam_trace(build_task(spec), 25, 0.01), rel=1e-5)
    assert lines[0].endswith(f"{loss[0]:.6g}")


# ---- the error boundary ----------------------------------------------------------------------------------------

def _run(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def test_toolkit_error_is_one_line_exit_1(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    res = _run("export", bad, "-o", tmp_path / "m.arrow")
    assert res.exit_code == 1 and res.output.startswith(f"Error: {bad}:1: not valid JSON")
    assert "Traceback" not in res.output


def test_usage_error_exits_2():
    assert _run("list", "--limit", "-3").exit_code == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_output_names_the_users_path(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    res = _run("sample", "--families", "twod", "--per-family", "2", "-o", ro / "s.jsonl")
    assert res.exit_code == 1 and f"{ro / 's.jsonl'}:" in res.output and ".tmp" not in res.output


def test_os_errors_name_the_users_path_not_the_temp_file(tmp_path, monkeypatch):
    import errno

    import taskgen.specfile as sf

    for code, what in ((errno.EROFS, "read-only file system at"), (errno.ENOSPC, "no space left to write"),
                       (errno.EACCES, "no permission for")):
        def fail(fd, data, code=code):
            raise OSError(code, os.strerror(code))

        with monkeypatch.context() as m:
            m.setattr(sf.os, "fsync", lambda fd, code=code: (_ for _ in ()).throw(OSError(code, os.strerror(code))))
            out = tmp_path / "out" / "s.jsonl"
            res = _run("sample", "--families", "twod", "--per-family", "2", "-o", out)
        assert res.exit_code == 1, res.output
        assert res.output == f"Error: {what} {out}: {os.strerror(code)}\n"
        assert not list((tmp_path / "out").iterdir())  # no temp file left behind


@pytest.mark.parametrize("kind", ["arrow", "msgpack", "zip", "json"])
def test_decode_errors_of_damaged_files_are_one_line(tmp_path, kind):
    import click

    path = tmp_path / f"damaged.{kind}"

    @click.command("damaged")
    def damaged():
        if kind == "arrow":
            import pyarrow as pa

            path.write_bytes(b"ARROW1\x00\x00garbage")
            pa.ipc.open_file(str(path)).read_all()
        elif kind == "msgpack":
            import msgpack

            path.write_bytes(b"\x92\x01\x02\x03")  # extra data after a complete object
            msgpack.unpackb(path.read_bytes())
        elif kind == "zip":
            import numpy as np

            path.write_bytes(b"PK\x03\x04trunc")
            np.load(path)
        else:
            path.write_text("{")
            json.loads(path.read_text())

    cli.add_command(damaged)
    try:
        res = _run("damaged")
        assert res.exit_code == 1 and res.output.startswith(f"Error: cannot read {path}: damaged"), res.output
        assert "Traceback" not in res.output
        debug = _run("--debug", "damaged")
        assert debug.exit_code == 1 and debug.exception is not None and not isinstance(debug.exception, SystemExit)
        env = _run("damaged", env={"TASKGEN_DEBUG": "1"})
        assert env.exception is not None and not isinstance(env.exception, SystemExit)
    finally:
        cli.commands.pop("damaged")


def test_boundary_covers_the_lazy_groups(tmp_path):
    res = _run("lopt", "plot", tmp_path)  # an empty folder: no metrics to plot
    assert res.exit_code in (0, 1) and "Traceback" not in res.output and "unavailable" not in res.output


# ---- a broken family plugin costs only its own family ------------------------------------------------------------

class _EP:
    group = "taskgen.families"

    def __init__(self, name, target):
        self.name, self.value, self._target = name, f"{name}_pkg.family:Family", target

    def load(self):
        return self._target()


def _broken():
    raise ImportError("No module named 'missing_dependency'")


def test_broken_entry_point_warns_and_fails_only_its_family(monkeypatch, tmp_path):
    from tests.toy_family import ToyFamily

    from taskgen.registry import FamilyUnavailableError, Registry
    from taskgen.specfile import SpecFileError, read_specs

    eps = [_EP("brokenfam", _broken), _EP("toy", lambda: ToyFamily)]
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: eps if group == "taskgen.families" else [])
    reg = Registry()
    assert reg.get("quadratic").name == "quadratic" and reg.get("toy").name == "toy"
    with pytest.warns(RuntimeWarning, match=r"entry point 'brokenfam' \(brokenfam_pkg.family:Family\).*ImportError"):
        families = reg.load_all()
    assert "brokenfam" not in [f.name for f in families] and "toy" in [f.name for f in families]
    with pytest.raises(FamilyUnavailableError, match="brokenfam.*missing_dependency"):
        reg.get("brokenfam")
    line = '{"config":{},"family":"brokenfam","family_version":1,"seed":0}\n'
    (tmp_path / "s.jsonl").write_text(line)
    with pytest.raises(SpecFileError, match=r"s\.jsonl:1: family: family 'brokenfam' is unavailable"):
        read_specs(tmp_path / "s.jsonl", registry=reg)


def test_broken_entry_point_does_not_break_commands(monkeypatch):
    import taskgen.registry as registry_mod

    monkeypatch.setattr("importlib.metadata.entry_points",
                        lambda group: [_EP("brokenfam", _broken)] if group == "taskgen.families" else [])
    monkeypatch.setattr(registry_mod, "_DEFAULT", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = _run("families")
        assert res.exit_code == 0 and "quadratic" in res.output
        res = _run("show", "quadratic-83941fda3522")
        assert res.exit_code == 0
    assert any("brokenfam" in str(w.message) for w in caught)


def test_missing_optional_package_gives_a_stand_in_but_broken_own_code_raises(monkeypatch):
    monkeypatch.setitem(cli.lazy_commands, "fake", ("no_such_package_xyz.cli:cmd", "Needs an extra."))
    res = CliRunner().invoke(cli, ["fake"])
    assert res.exit_code != 0 and "no_such_package_xyz" in res.output
    monkeypatch.setitem(cli.lazy_commands, "own", ("lopt_trainer.no_such_module:cmd", "Broken."))
    with pytest.raises(ModuleNotFoundError, match="lopt_trainer.no_such_module"):
        cli.get_command(None, "own")


# ---- a plugin's failure of any kind is a warning, in every command (issue 17, F) ---------------------------------

def _exits():
    import argparse

    argparse.ArgumentParser(prog="plugin").parse_args(["--no-such-flag"])  # SystemExit(2), as at import


class _Custom(BaseException):
    pass


def _custom():
    raise _Custom("a BaseException subclass")


class _BadVersion:
    @staticmethod
    def make():
        from tests.toy_family import ToyFamily

        class Versioned(ToyFamily):
            name = "badversion"
            version = "1"

        return Versioned


@pytest.mark.parametrize("target,reason", [
    (_exits, "SystemExit: exited with status 2 while loading"),
    (_custom, "_Custom: a BaseException subclass"),
    (_BadVersion.make, "TypeError: family 'badversion' has version '1'; a version is an integer in [0, 2**31)"),
])
def test_any_failure_while_loading_a_plugin_is_a_warning_naming_it(monkeypatch, target, reason):
    from taskgen.registry import FamilyUnavailableError, Registry

    name = "badversion" if target is _BadVersion.make else "weird"
    monkeypatch.setattr("importlib.metadata.entry_points",
                        lambda group: [_EP(name, target)] if group == "taskgen.families" else [])
    reg = Registry()
    with pytest.warns(RuntimeWarning) as caught:
        names = [f.name for f in reg.load_all()]
    assert name not in names and "quadratic" in names
    assert str(caught[0].message) == (f"taskgen: skipping family plugin entry point {name!r} "
                                      f"({name}_pkg.family:Family) of group 'taskgen.families': {reason}")
    with pytest.raises(FamilyUnavailableError, match=f"family '{name}' is unavailable"):
        reg.get(name)


def test_ctrl_c_while_loading_a_plugin_stops_the_command(monkeypatch):
    from taskgen.registry import Registry

    def interrupt():
        raise KeyboardInterrupt

    monkeypatch.setattr("importlib.metadata.entry_points",
                        lambda group: [_EP("slow", interrupt)] if group == "taskgen.families" else [])
    with pytest.raises(KeyboardInterrupt):
        Registry().load_all()


def test_all_means_the_families_that_load_in_every_command(monkeypatch, tmp_path):
    import taskgen.registry as registry_mod
    from tests.toy_family import ToyFamily

    monkeypatch.setattr("importlib.metadata.entry_points",
                        lambda group: [_EP("exitfam", _exits), _EP("toy", lambda: ToyFamily)]
                        if group == "taskgen.families" else [])
    monkeypatch.setattr(registry_mod, "_DEFAULT", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        listed = _run("families", "--json")
        sampled = _run("sample", "--families", "all", "--per-family", "1", "--json", "-o", tmp_path / "s.jsonl")
    assert listed.exit_code == 0 and sampled.exit_code == 0, sampled.output
    names = [r["name"] for r in json.loads(listed.stdout)]
    assert "toy" in names and "exitfam" not in names
    assert sorted(json.loads(sampled.stdout)["per_family"]) == sorted(names)
    assert any("'exitfam'" in str(w.message) and "SystemExit" in str(w.message) for w in caught)
    res = _run("sample", "--families", "exitfam", "--per-family", "1", "-o", tmp_path / "t.jsonl")
    assert res.exit_code == 1 and res.output.startswith("Error: family 'exitfam' is unavailable: entry point")


def test_a_reader_that_leaves_early_ends_the_command_quietly():
    """``taskgen list | head -1``: the closed pipe is not an error (no ``Error:`` line, exit 0)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "taskgen_cli", "list", "--limit", "3000"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=REPO)
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, as `head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and first.strip() and "Error" not in err and "Traceback" not in err, err
