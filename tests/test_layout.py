"""The package map of ``lopt_trainer`` holds: arrows one way between its subpackages, imports at module top
unless deferred for a stated reason, one public class per name; and the lab stays apart from the library: nothing
installed imports ``research`` or ``benchmarks``, ``benchmarks/`` holds speed benchmarks only, and the wheel's
package list cannot take in either."""

import ast
import fnmatch
import pathlib
import re
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "lopt_trainer"
REPO = ROOT.parent

# From the top down; a module may import its own subpackage and any subpackage of a lower rank.
RANK = {"app": 5, "meta": 4, "evaluation": 3, "inner": 2, "theta": 2, "common": 1, "optimizer": 1,
        "errors": 0}
DEFERRABLE = {"matplotlib", "matplotlib.pyplot", "ray", "ray._private", "fcntl"}
"""Imports that may sit inside a function anywhere: optional heavy dependencies and a platform module."""


def _modules():
    return sorted(p for p in ROOT.rglob("*.py") if p.name != "__init__.py" or p.parent != ROOT)


def _part(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py")


def _lopt_imports(tree):
    """``(node, imported subpackage, inside a function)`` for every import of ``lopt_trainer.<part>``."""
    inner = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
             for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] if node.module != "lopt_trainer" else [f"lopt_trainer.{a.name}" for a in node.names]
        for name in names:
            yield node, name, id(node) in inner


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_arrows_go_one_way(path):
    tree = ast.parse(path.read_text())
    me = _part(path)
    for node, name, _ in _lopt_imports(tree):
        parts = name.split(".")
        if parts[0] != "lopt_trainer":
            continue
        assert len(parts) > 1, f"{path}:{node.lineno}: import a module, not the package's lazy re-exports"
        other = parts[1]
        assert other in RANK, f"{path}:{node.lineno}: imports {name}, outside the package map"
        if other != me:
            assert RANK[other] < RANK[me], f"{path}:{node.lineno}: {me} must not import {other} ({name})"
            assert {me, other} != {"inner", "theta"}, f"{path}:{node.lineno}: siblings import each other"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_are_at_module_top_unless_deferred_for_a_reason(path):
    if path.relative_to(ROOT).as_posix() == "app/cli.py":
        return  # every command defers its imports so that `taskgen --help` starts without JAX (module docstring)
    tree = ast.parse(path.read_text())
    lines = path.read_text().splitlines()
    for node, name, inside in _lopt_imports(tree):
        if not inside or name in DEFERRABLE:
            continue
        assert "#" in lines[node.lineno - 1], f"{path}:{node.lineno}: {name} imported inside a function without a reason"


def test_no_two_public_classes_share_a_name():
    seen = {}
    for path in _modules():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                assert node.name not in seen, f"class {node.name} in {path} and {seen[node.name]}"
                seen[node.name] = path


def test_public_names_import_lazily_from_the_package():
    import lopt_trainer

    for name in lopt_trainer.__all__:
        assert getattr(lopt_trainer, name) is not None, name
    from lopt_trainer.optimizer import hierarchical
    from lopt_trainer.theta.load import load_theta

    assert lopt_trainer.lopt_init is hierarchical.init and lopt_trainer.load_theta is load_theta
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        lopt_trainer.nosuch  # noqa: B018


@pytest.mark.parametrize("package", ["lopt_trainer", "taskgen"])
def test_the_public_api_is_literal_and_visible_to_type_checkers(package):
    """``__all__`` is written out (not computed), it is exactly the lazily exported names, and a ``TYPE_CHECKING``
    block imports each of them for real, so editors and type checkers follow them."""
    import importlib

    path = pathlib.Path(__file__).resolve().parent.parent / package / "__init__.py"
    tree = ast.parse(path.read_text())
    literal = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "__all__")
    assert isinstance(literal.value, ast.List) and all(isinstance(e, ast.Constant) for e in literal.value.elts)
    names = [e.value for e in literal.value.elts]
    module = importlib.import_module(package)
    assert names == sorted(names) == sorted([*module._EXPORTS, *getattr(module, "_RENAMED", {})])
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    imported = {a.asname or a.name for node in block.body for a in node.names}
    assert imported == set(names)


# ---- the lab stays apart from the library ------------------------------------------------------------------------

INSTALLED = ("datasets_cache", "families", "lopt_trainer", "taskgen", "taskgen_cli")
"""The packages of the wheel (what a user imports and calls)."""
LAB = ("research", "benchmarks")
"""The checkout's top-level folders that are not installed: the lab and the speed benchmarks."""
SPEED_BENCHMARKS = {"__init__.py", "bench_cli.py", "bench_datasets.py", "bench_devices.py", "bench_families.py",
                    "bench_inner_loop.py", "bench_lopt_step.py", "bench_meta_train.py", "bench_recipe.py",
                    "bench_suite.py", "common.py", "device_check.sh", "run_all.py"}
"""Everything ``benchmarks/`` may hold besides ``results/``: studies of findings belong in ``research/``."""
_LAB_MODULE = re.compile(rf"^({'|'.join(LAB)})(\.\w+)*(:\w+)?$")
"""A string naming a lab module for a dynamic import (``research.cli``, ``research.cli:cli``)."""


def _installed_modules():
    return [p for package in INSTALLED for p in sorted((REPO / package).rglob("*.py"))]


@pytest.mark.parametrize("path", _installed_modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_installed_module_imports_the_lab(path):
    """Neither by an import statement (at any depth) nor by a module name handed to a dynamic import or a lazy
    command table."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _LAB_MODULE.match(node.value):
            names = [node.value]
        else:
            continue
        for name in names:
            assert name.split(".")[0].split(":")[0] not in LAB, (
                f"{path.relative_to(REPO)}:{node.lineno}: names {name}, which is not installed")


def test_benchmarks_hold_speed_benchmarks_only():
    found = {p.name for p in (REPO / "benchmarks").iterdir() if p.name not in ("results", "__pycache__")}
    extra = sorted(found - SPEED_BENCHMARKS)
    assert not extra, f"not speed benchmarks (studies go in research/): {extra}"
    assert {"bench_lopt_step.py", "bench_meta_train.py", "run_all.py", "common.py"} <= found
    figures = sorted(p.name for p in (REPO / "benchmarks" / "results").iterdir() if p.suffix != ".json")
    assert not figures, f"benchmarks/results/ holds figures of findings (they go to research/results/): {figures}"


def test_the_wheel_cannot_take_in_the_lab():
    """``[tool.setuptools.packages.find] include`` matches every installed package and no lab module (setuptools
    matches the patterns with ``fnmatchcase`` against dotted package names)."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    find = config["tool"]["setuptools"]["packages"]["find"]
    patterns = find["include"]
    assert find.get("where", ["."]) == ["."]

    def taken(name):
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)

    for package in INSTALLED:
        assert taken(package) and taken(f"{package}.sub"), package
    for lab in LAB:
        for name in (lab, f"{lab}.cli", f"{lab}.tools", f"{lab}.results"):
            assert not taken(name), f"{name} would be installed (pattern list {patterns})"
