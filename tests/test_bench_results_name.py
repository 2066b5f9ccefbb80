"""Every benchmark and study with a ``--name`` option refuses a results name that is not a plain file name, before any
work (benchmarks/common.py: ``check_results_name``)."""

import importlib

import pytest

from benchmarks.common import name_problem

MAINS = {  # module: the other arguments its parser requires
    "benchmarks.bench_recipe": [],
    "research.compute_curve": [],
    "research.compare_panels": ["--pair", "p", "a", "b"],
    "research.interpolation": ["--to", "handset"],
    "research.panel_vs_quality": ["--point", "x", "a", "b.json"],
    "research.step_size": [],
}


@pytest.mark.parametrize("module", sorted(MAINS))
@pytest.mark.parametrize("bad", ["../escape", ".hidden", "a b", "x/y"])
def test_a_results_name_that_is_a_path_is_refused_with_exit_2(module, bad, capsys, monkeypatch, tmp_path):
    import benchmarks.common
    import research.common

    monkeypatch.setattr(benchmarks.common, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(research.common, "RESULTS_DIR", tmp_path)
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as e:
        main(MAINS[module] + ["--name", bad])
    assert e.value.code == 2 and f"--name {bad!r}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_name_problem_accepts_plain_file_names_only():
    assert name_problem("compute_curve_late-1.5") is None
    assert all(name_problem(n) for n in ("../x", ".x", "a b", "x/y", ""))
