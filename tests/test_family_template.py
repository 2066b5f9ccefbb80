"""The family package template (``examples/family_template``), installed and used end to end from a folder
outside the repository (issue 16, part 1).

The package is installed into a temporary folder put on ``PYTHONPATH``, without the network: with ``pip install
--no-build-isolation --no-deps --no-index --target`` where this environment's setuptools can build wheels, and
otherwise (setuptools < 70.1 without the ``wheel`` package, as in a fresh ``python -m venv``) by writing its
metadata with setuptools' ``egg_info`` next to a copy of the package, which is what an installed package is to
``importlib.metadata``: the entry point is found the same way.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "examples" / "family_template"
FAMILY = "softmax_regression"


def _can_build_wheels() -> bool:
    import setuptools

    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


def _install(root: Path) -> Path:
    """Install the template under ``root / "site"`` (see the module docstring); returns that folder."""
    src, site = root / "src", root / "site"
    shutil.copytree(TEMPLATE, src)  # builds write into the source folder: keep the repository clean
    site.mkdir()
    if _can_build_wheels():
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps", "--no-index",
               "--target", str(site), str(src)]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    else:
        subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "--quiet", "egg_info",
                        "--egg-base", str(site)], cwd=src, check=True, capture_output=True, text=True)
        shutil.copytree(src / "my_families", site / "my_families")
    return site


def _env(*paths, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("TASKGEN_PLUGINS", "PYTHONPATH")}
    env.update(PYTHONPATH=os.pathsep.join(str(p) for p in (*paths, REPO)), JAX_PLATFORMS="cpu", **extra)
    return env


def _taskgen(cwd: Path, env: dict, *args, ok: bool = True, module: str = "taskgen_cli") -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=300)
    if ok:
        assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("template")
    site = _install(root)
    work = root / "work"  # outside the repository: nothing may depend on the current folder
    work.mkdir()
    return site, work, root / "src"


def test_installed_family_works_in_every_taskgen_command(installed):
    site, work, _ = installed
    env = _env(site)
    out = json.loads(_taskgen(work, env, "sample", "--families", FAMILY, "--per-family", "4", "--seed", "1",
                              "--json", "-o", "mine.jsonl").stdout)
    assert out["specs"] == 4 and list(out["per_family"]) == [FAMILY]
    out = json.loads(_taskgen(work, env, "export", "mine.jsonl", "-o", "mine.parquet", "--json").stdout)
    assert out == {"output": "mine.parquet", "format": "parquet", "rows": 4}
    assert (work / "mine.parquet").read_bytes()[:4] == b"PAR1"
    rows = json.loads(_taskgen(work, env, "list", "--suite", "mine.parquet", "--json").stdout)
    assert [r["params"] for r in rows] == [650] * 4  # 64 × 10 weights + 10 biases, from cost() alone
    assert {r["variant"] for r in rows} == {"softmax_regression/digits"}
    task_id = rows[0]["task_id"]
    shown = json.loads(_taskgen(work, env, "show", task_id, "--suite", "mine.parquet", "--json").stdout)
    assert (shown["spec"]["task_id"], shown["params"], shown["input_shape"]) == (task_id, 650, [8, 8, 1])
    built = json.loads(_taskgen(work, env, "build", task_id, "--suite", "mine.jsonl", "--steps", "30", "--lr",
                                "0.05", "--json").stdout)
    assert len(built["loss"]) == 30 and built["loss"][-1] < built["loss"][0]


def test_without_the_package_the_error_says_how_to_load_it(installed):
    _, work, _ = installed
    out = _taskgen(work, _env(), "sample", "--families", FAMILY, "-o", "none.jsonl", ok=False)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith(f"Error: unknown family '{FAMILY}'; known families: quadratic")
    assert out.stderr.endswith("; load a plugin family with --plugin MODULE or TASKGEN_PLUGINS, or install a "
                               "package exposing the entry point taskgen.families\n")


def test_uninstalled_family_through_the_variable_reaches_taskgen_train(installed):
    """Not installed, only on the path (no metadata, so no entry point): ``--plugin`` makes it known to taskgen's
    commands, and ``TASKGEN_PLUGINS`` alone to ``taskgen train`` (a command of lopt_trainer), as to any process
    that inherits it."""
    _, work, src = installed
    env = _env(src)
    _taskgen(work, env, "--plugin", "my_families.register", "sample", "--families", FAMILY, "--per-family", "2",
             "-o", "plug.jsonl")
    task_id = json.loads((work / "plug.jsonl").read_text().splitlines()[0])["task_id"]
    env_var = _env(src, TASKGEN_PLUGINS="my_families.register")
    out = json.loads(_taskgen(work, env_var, "train", task_id, "--suite", "plug.jsonl", "--steps", "5", "--out",
                              "t1", "--json").stdout)
    assert out["task_id"] == task_id and out["steps"] == 5


@pytest.mark.slow
def test_plugin_class_form_reaches_train_and_check_family(installed):
    _, work, src = installed
    env = _env(src)
    plugin = f"my_families.{FAMILY}:SoftmaxRegressionFamily"
    _taskgen(work, env, "--plugin", plugin, "sample", "--families", FAMILY, "--per-family", "2", "-o", "cls.jsonl")
    task_id = json.loads((work / "cls.jsonl").read_text().splitlines()[0])["task_id"]
    out = json.loads(_taskgen(work, env, "--plugin", plugin, "train", task_id, "--suite", "cls.jsonl", "--steps",
                              "5", "--out", "t2", "--json").stdout)
    assert out["task_id"] == task_id
    report = json.loads(_taskgen(work, env, "--plugin", plugin, "check-family", FAMILY, "--specs", "2",
                                 "--json").stdout)
    assert report["ok"] is True and report["family"] == FAMILY


def test_installed_family_through_meta_train_eval_and_report(installed):
    """The installed family (found through its entry point, no plugin setting) meta-trains, is evaluated against
    the baselines and appears in the report (the lab's ``python -m research report``, the checkout on
    ``PYTHONPATH``), all from a folder outside the repository."""
    site, work, _ = installed
    env = _env(site)
    _taskgen(work, env, "sample", "--families", FAMILY, "--per-family", "12", "--seed", "3", "-o", "lopt.jsonl")
    run = work / "report" / "meta"
    _taskgen(work, env, "lopt", "meta-train", "--suite", "lopt.jsonl", "--preset", "quick", "--steps", "2",
             "--set", "num_groups=1", "--set", "tasks_per_group=2", "--set", "truncation=5", "--set",
             "horizon_min=10", "--set", "horizon_max=20", "--set", "eval_every=0", "--set", "compilation_cache=\"\"",
             "--no-progress", "--out", run)
    assert (run / "theta.npz").is_file() and (run / "checkpoint.msgpack").is_file()
    out = json.loads(_taskgen(work, env, "lopt", "eval", "--theta", run, "--suite", "lopt.jsonl", "--tasks", "2",
                              "--steps", "20", "--seeds", "1", "--trials", "1", "--adamlr-trials", "2",
                              "--baselines", "adamlr", "--no-progress", "--json", "--out",
                              work / "report" / "eval").stdout)
    assert {t["task_id"].split("-")[0] for t in out["tasks"]} == {FAMILY}
    _taskgen(work, env, "report", work / "report", module="research")
    page = (work / "report" / "report.html").read_text()
    assert "meta-training: not run" not in page and "evaluation: not run" not in page
    assert "Meta-training" in page and "Evaluation" in page
