"""Numbers on the command line (issue 17, E): every numeric option has a type with its real range, the error
boundary tells an encode error from a decode error, and Ctrl-C exits 130."""

import json

import click
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from taskgen import cli_types
from taskgen_cli import cli
from taskgen.cli_types import (FINITE_FLOAT, INT64, NON_NEGATIVE_INT64, POSITIVE_FLOAT, POSITIVE_INT64, SEED,
                               UNIT_INTERVAL, FiniteFloat, Int64)

TOO_BIG = 2**70  # 1180591620717411303424


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _last_line(res):
    return res.output.strip().splitlines()[-1]


# ---- the types ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [("0.5", 0.5), ("1e-3", 1e-3), (" 2 ", 2.0), ("1e308", 1e308)])
def test_positive_float_reads_finite_numbers(text, expected):
    assert POSITIVE_FLOAT.convert(text, None, None) == expected


@pytest.mark.parametrize("text,reason", [
    ("nan", "'nan' is not a finite number"), ("inf", "'inf' is not a finite number"),
    ("-inf", "'-inf' is not a finite number"), ("1e400", "'1e400' is not a finite number"),
    ("0", "0.0 is not in the range x>0."), ("-1", "-1.0 is not in the range x>0."),
    ("2**70", "'2**70' is not a number."), ("", "'' is not a number."),
])
def test_positive_float_refuses(text, reason):
    with pytest.raises(click.BadParameter) as err:
        POSITIVE_FLOAT.convert(text, None, None)
    assert err.value.message.startswith(reason)


def test_float_from_an_int_too_large_for_a_float():
    with pytest.raises(click.BadParameter, match="is too large for a float"):
        FINITE_FLOAT.convert(10**400, None, None)
    assert FINITE_FLOAT.convert(3, None, None) == 3.0


@pytest.mark.parametrize("text,expected", [("0", 0), ("9223372036854775807", 2**63 - 1), ("+7", 7)])
def test_int64_reads_what_fits(text, expected):
    assert NON_NEGATIVE_INT64.convert(text, None, None) == expected


@pytest.mark.parametrize("typ,text,reason", [
    (NON_NEGATIVE_INT64, str(TOO_BIG),
     f"{TOO_BIG} does not fit a 64-bit integer (allowed: 0<=x<=9223372036854775807)."),
    (INT64, str(-(2**63) - 1), "-9223372036854775809 does not fit a 64-bit integer (allowed: "
                               "-9223372036854775808<=x<=9223372036854775807)."),
    (NON_NEGATIVE_INT64, "-1", "-1 is not in the range x>=0."),
    (POSITIVE_INT64, "0", "0 is not in the range x>=1."),
    (POSITIVE_INT64, "1.5", "'1.5' is not an integer."),
    (POSITIVE_INT64, "1e3", "'1e3' is not an integer."),
    (SEED, str(2**32), "4294967296 is not in the range 0<=x<=4294967295."),
])
def test_int64_refuses(typ, text, reason):
    with pytest.raises(click.BadParameter) as err:
        typ.convert(text, None, None)
    assert err.value.message == reason


def test_a_refused_value_is_echoed_cut():
    with pytest.raises(click.BadParameter) as err:
        INT64.convert("9" * 5000, None, None)
    assert err.value.message == ("'" + "9" * 79 + "... (5000 characters) does not fit a 64-bit integer (allowed: "
                                 "-9223372036854775808<=x<=9223372036854775807).")
    with pytest.raises(click.BadParameter) as err:
        FINITE_FLOAT.convert("x" * 4_000_000, None, None)
    assert len(err.value.message) < 200


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.text(max_size=30))
@settings(max_examples=300, deadline=None)
def test_types_are_total(value):
    # Any input gives a number in range or a usage error: never another exception.
    for typ in (FINITE_FLOAT, POSITIVE_FLOAT, UNIT_INTERVAL, INT64, POSITIVE_INT64, SEED):
        try:
            out = typ.convert(value, None, None)
        except click.BadParameter:
            continue
        if isinstance(typ, FiniteFloat):
            assert isinstance(out, float) and out == out and abs(out) != float("inf")
        else:
            assert type(out) is int and -(2**63) <= out < 2**63


def test_bounds_must_fit_int64_and_help_shows_the_range():
    with pytest.raises(ValueError, match="does not fit"):
        Int64(min=0, max=2**64)
    assert INT64._describe_range() == "64-bit" and FINITE_FLOAT._describe_range() == "finite"
    assert UNIT_INTERVAL._describe_range() == "0<=x<=1" and POSITIVE_FLOAT._describe_range() == "x>0"


def test_seed_limit_is_the_specs():
    from taskgen.spec import SEED_LIMIT

    assert cli_types.SEED_LIMIT == SEED_LIMIT


def test_every_numeric_option_of_taskgens_commands_has_a_ranged_type():
    own = ["families", "sample", "export", "list", "show", "build", "check-family"]
    found = []
    for name in own:
        for param in cli.commands[name].params:
            if isinstance(param.type, (click.types.IntParamType, click.types.FloatParamType)):
                assert isinstance(param.type, (Int64, FiniteFloat)), (name, param.name, param.type)
                found.append(f"{name} --{param.name}")
    assert sorted(found) == ["build --lr", "build --steps", "check-family --n_specs", "check-family --seed",
                             "list --limit", "list --max_flops", "list --max_params", "list --min_params",
                             "list --sample_n", "list --seed", "sample --holdout_fraction", "sample --per_family",
                             "sample --seed"]


# ---- on the command line -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,line", [
    (["list", "--max-params", TOO_BIG],
     f"Error: Invalid value for '--max-params': {TOO_BIG} does not fit a 64-bit integer (allowed: "
     "0<=x<=9223372036854775807)."),
    (["list", "--max-flops", "-1"], "Error: Invalid value for '--max-flops': -1 is not in the range x>=0."),
    (["build", "quadratic-83941fda3522", "--lr", "nan"],
     "Error: Invalid value for '--lr': 'nan' is not a finite number (NaN and infinities are refused; a literal "
     "beyond ±1.8e308 overflows to infinity)."),
    (["build", "quadratic-83941fda3522", "--lr", "inf"],
     "Error: Invalid value for '--lr': 'inf' is not a finite number (NaN and infinities are refused; a literal "
     "beyond ±1.8e308 overflows to infinity)."),
    (["build", "quadratic-83941fda3522", "--lr", "-1"], "Error: Invalid value for '--lr': -1.0 is not in the range "
                                                        "x>0."),
    (["sample", "--holdout-fraction", "nan", "-o", "x.jsonl"],
     "Error: Invalid value for '--holdout-fraction': 'nan' is not a finite number (NaN and infinities are refused; "
     "a literal beyond ±1.8e308 overflows to infinity)."),
    (["sample", "--seed", 2**64, "-o", "x.jsonl"],
     "Error: Invalid value for '--seed': 18446744073709551616 does not fit a 64-bit integer (allowed: "
     "0<=x<=9223372036854775807)."),
])
def test_numeric_options_refuse_out_of_range_as_usage_errors(args, line):
    res = _run(*args)
    assert res.exit_code == 2 and _last_line(res) == line and "Traceback" not in res.output


def test_list_with_the_largest_int64_limit_works():
    res = _run("list", "--family", "twod", "--max-params", 2**63 - 1, "--limit", 2**63 - 1, "--json")
    assert res.exit_code == 0 and len(json.loads(res.output)) == 500


# ---- the error boundary: encode errors are not damaged files ----------------------------------------------------

def _with_command(body):
    @click.command("probe")
    def probe():
        body()

    cli.add_command(probe)
    return probe


def test_a_value_json_cannot_store_is_not_called_a_damaged_file(tmp_path):
    out = tmp_path / "seed0.json"

    def body():
        path = out  # noqa: F841 -- the boundary names the file from the frame's ``path``
        out.write_text(json.dumps({"lr": float("nan")}, allow_nan=False))

    _with_command(body)
    try:
        res = _run("probe")
    finally:
        cli.commands.pop("probe")
    assert res.exit_code == 1 and not out.exists()
    assert res.output.startswith(f"Error: cannot write {out}: a value cannot be stored in this format (ValueError: "
                                 "Out of range float values are not JSON compliant")  # (": nan" on newer Pythons)


def test_a_decode_error_is_still_a_damaged_file(tmp_path):
    bad = tmp_path / "run.json"
    bad.write_text("{")

    def body():
        path = bad
        json.loads(path.read_text())

    _with_command(body)
    try:
        res = _run("probe")
    finally:
        cli.commands.pop("probe")
    assert res.exit_code == 1 and res.output.startswith(f"Error: cannot read {bad}: damaged or not the expected "
                                                        "format (JSONDecodeError: Expecting property name")


def test_a_library_message_is_cut():
    def body():
        raise ValueError("v" * 100_000)

    _with_command(body)
    try:
        res = _run("probe")
    finally:
        cli.commands.pop("probe")
    assert res.exit_code == 1 and res.output == f"Error: {'v' * 2000}... (100000 characters)\n"


# ---- Ctrl-C ------------------------------------------------------------------------------------------------------

def test_ctrl_c_exits_130_in_taskgens_commands(monkeypatch):
    import taskgen.api

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(taskgen.api, "load_table", interrupt)
    res = _run("list")
    assert res.exit_code == 130 and res.output == "Interrupted\n"
    monkeypatch.setattr(taskgen.api, "resolve_spec", interrupt)
    assert _run("show", "quadratic-83941fda3522").exit_code == 130


def test_ctrl_c_exits_130_in_a_lazy_group_and_at_a_prompt():
    import datasets_cache.cli as data_cli

    def body():  # what click.prompt does on Ctrl-C
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise click.Abort() from None

    _with_command(body)
    try:
        res = _run("probe")
    finally:
        cli.commands.pop("probe")
    assert res.exit_code == 130

    @data_cli.data.command("probe-interrupt")
    def probe_interrupt():
        raise KeyboardInterrupt

    try:
        res = _run("data", "probe-interrupt")
    finally:
        data_cli.data.commands.pop("probe-interrupt")
    assert res.exit_code == 130 and res.output == "Interrupted\n"
