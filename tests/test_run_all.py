"""benchmarks/run_all.py: every benchmark runs with its own empty command line, and one that fails or exits with a
usage error is counted without stopping the others."""

import sys
import types

from benchmarks import run_all


def _module(name, main):
    mod = types.ModuleType(f"benchmarks.{name}")
    mod.main = main
    return mod


def test_each_benchmark_sees_an_empty_command_line_and_failures_are_counted(monkeypatch, capsys):
    seen = []

    def ok():
        seen.append(list(sys.argv))

    def usage_error():
        raise SystemExit(2)

    def broken():
        raise RuntimeError("boom")

    for name, fn in (("bench_zz_ok", ok), ("bench_zz_usage", usage_error), ("bench_zz_broken", broken),
                     ("bench_zz_exit0", lambda: sys.exit(0))):
        monkeypatch.setitem(sys.modules, f"benchmarks.{name}", _module(name, fn))
    argv_before = list(sys.argv)
    assert run_all.main(["bench_zz_ok", "bench_zz_usage", "bench_zz_broken", "bench_zz_exit0", "bench_zz_ok"]) == 2
    assert seen == [["bench_zz_ok"], ["bench_zz_ok"]] and sys.argv == argv_before
    out = capsys.readouterr().out
    assert "bench_zz_usage FAILED: SystemExit: 2" in out and "bench_zz_broken FAILED: RuntimeError: boom" in out
    assert "bench_zz_exit0 FAILED" not in out


def test_the_default_run_is_the_speed_benchmarks_only():
    """The studies that need a θ named (the quality benchmark, implicit regularisation, interpolation) live in
    research/, so a run without names runs every benchmark of benchmarks/ and none of them."""
    from tests.test_layout import SPEED_BENCHMARKS

    names = run_all.default_names()
    assert names == sorted(names) and {"bench_cli", "bench_inner_loop", "bench_lopt_step", "bench_meta_train"} <= set(
        names) and {f"{n}.py" for n in names} <= SPEED_BENCHMARKS
    assert not {"bench_quality", "bench_implicit_reg", "bench_interpolation"} & set(names)
