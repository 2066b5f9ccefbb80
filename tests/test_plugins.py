"""User families on the command line and in child processes: ``taskgen --plugin MODULE`` and ``TASKGEN_PLUGINS``
(issue 16, part 1)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import taskgen.registry as registry_mod
from taskgen_cli import cli
from taskgen.registry import PluginError, env_plugins, load_plugin
from taskgen.registry import Registry, UnknownFamilyError

REPO = Path(__file__).resolve().parent.parent
HINT = ("load a plugin family with --plugin MODULE or TASKGEN_PLUGINS, or install a package exposing the entry "
        "point taskgen.families")

_FAMILY_MODULE = """
import taskgen
from tests.toy_family import ToyFamily


class {cls}(ToyFamily):
    name = "{name}"

{register}
"""


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder on sys.path for plugin modules, a fresh default registry, and no TASKGEN_PLUGINS (restored
    afterwards, also when a command sets it)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry_mod, "_DEFAULT", None)
    monkeypatch.setenv("TASKGEN_PLUGINS", "")
    return tmp_path


def _module(folder: Path, module: str, family: str, register: bool = True) -> None:
    line = f"taskgen.register_family({family.title()})" if register else ""
    (folder / f"{module}.py").write_text(_FAMILY_MODULE.format(cls=family.title(), name=family, register=line))


def _run(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def test_unknown_family_error_says_how_to_load_one():
    with pytest.raises(UnknownFamilyError) as err:
        Registry(builtins={"toy": "tests.toy_family:ToyFamily"}, use_entry_points=False).get("softmax_regression")
    assert str(err.value) == f"unknown family 'softmax_regression'; known families: toy; {HINT}"


def test_plugin_option_registers_families_for_every_command_and_children(plugin_dir):
    _module(plugin_dir, "plug_opt_a", "plugfam_a")
    res = _run("--plugin", "plug_opt_a", "families", "--json")
    assert res.exit_code == 0, res.output
    assert "plugfam_a" in [row["name"] for row in json.loads(res.stdout)]
    assert os.environ["TASKGEN_PLUGINS"] == "plug_opt_a"  # what child processes inherit
    res = _run("--plugin", "plug_opt_a", "sample", "--families", "plugfam_a", "--per-family", "2", "--json",
               "-o", plugin_dir / "s.jsonl")
    assert res.exit_code == 0 and json.loads(res.stdout)["specs"] == 2


def test_module_colon_class_registers_the_class_once_even_if_named_twice(plugin_dir):
    _module(plugin_dir, "plug_cls_b", "plugfam_b", register=False)
    res = _run("--plugin", "plug_cls_b:Plugfam_B", "families", "--json",
               env={"TASKGEN_PLUGINS": "plug_cls_b:Plugfam_B"})
    assert res.exit_code == 0, res.output
    assert [row["name"] for row in json.loads(res.stdout)].count("plugfam_b") == 1


def test_env_and_option_plugins_merge_in_order_without_repeats(plugin_dir, monkeypatch):
    _module(plugin_dir, "plug_c1", "plugfam_c1")
    _module(plugin_dir, "plug_c2", "plugfam_c2")
    monkeypatch.setenv("TASKGEN_PLUGINS", " plug_c1 ,,plug_c1")
    assert env_plugins() == ["plug_c1"]
    res = _run("--plugin", "plug_c2", "--plugin", "plug_c1", "families", "--json")
    assert res.exit_code == 0, res.output
    assert {"plugfam_c1", "plugfam_c2"} <= {row["name"] for row in json.loads(res.stdout)}
    assert os.environ["TASKGEN_PLUGINS"] == "plug_c1,plug_c2"


@pytest.mark.parametrize("setting", ["option", "env"])
def test_a_plugin_that_cannot_load_is_one_error_line_naming_it_and_the_setting(plugin_dir, setting):
    (plugin_dir / "plug_broken_d.py").write_text("raise RuntimeError('boom at import')\n")
    args = ["--plugin", "plug_broken_d"] if setting == "option" else []
    env = {"TASKGEN_PLUGINS": "plug_broken_d"} if setting == "env" else None
    res = _run(*args, "families", env=env)
    where = "--plugin" if setting == "option" else "TASKGEN_PLUGINS"
    assert res.exit_code == 1
    assert res.output == (f"Error: cannot load family plugin 'plug_broken_d' (from {where}): RuntimeError: boom "
                          "at import\n")


def test_missing_and_malformed_plugin_names(plugin_dir):
    res = _run("--plugin", "no_such_plugin_module_xyz", "list")
    assert res.exit_code == 1 and res.output == (
        "Error: cannot load family plugin 'no_such_plugin_module_xyz' (from --plugin): no module named "
        "'no_such_plugin_module_xyz' on the Python path (is its package installed, or its folder on PYTHONPATH?)\n")
    with pytest.raises(PluginError, match=r"'my/file\.py' \(from TASKGEN_PLUGINS\): not a module name"):
        load_plugin("my/file.py", "TASKGEN_PLUGINS")


def test_a_fresh_process_loads_taskgen_plugins_by_itself(plugin_dir):
    """What a Ray worker does: import taskgen lazily and ask for the family; the variable is enough."""
    _module(plugin_dir, "plug_fresh_e", "plugfam_e")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), str(REPO)]),
           "TASKGEN_PLUGINS": "plug_fresh_e", "JAX_PLATFORMS": "cpu"}
    code = "import taskgen; print(taskgen.get_family('plugfam_e').name)"
    out = subprocess.run([sys.executable, "-c", code], cwd=plugin_dir, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "plugfam_e\n"


def test_the_plugin_option_is_documented_in_the_help():
    res = _run("--help")
    assert "--plugin MODULE" in res.output and "TASKGEN_PLUGINS" in res.output


def test_unknown_family_on_the_command_line_names_the_plugin_setting(plugin_dir):
    res = _run("sample", "--families", "softmax_regression", "--per-family", "1", "-o", plugin_dir / "x.jsonl")
    assert res.exit_code == 1 and res.output.startswith("Error: unknown family 'softmax_regression'; known families:")
    assert res.output.endswith(f"; {HINT}\n")
    assert not (plugin_dir / "x.jsonl").exists()


def test_plugin_error_is_a_toolkit_error_with_the_plugin_and_setting():
    with pytest.raises(PluginError) as err:
        load_plugin("no_such_plugin_module_xyz2", "--plugin")
    assert (err.value.plugin, err.value.setting) == ("no_such_plugin_module_xyz2", "--plugin")
    assert isinstance(err.value, ImportError)

