"""``taskgen.check_family`` and ``taskgen check-family``: a family that breaks the contract is named, with what
broke (issue 16, part 1)."""

import json
import random

import pytest
from click.testing import CliRunner

import taskgen
import taskgen.registry as registry_mod
from families.quadratic import QuadraticFamily
from taskgen_cli import cli
from taskgen.family_check import CHECKS, FamilyCheckError, check_family, check_seeds, param_count, spec_from_seed
from tests.toy_family import ToyFamily


class WrongCost(QuadraticFamily):
    """Says 1 parameter whatever the model has: builds and trains, but breaks --max-params."""

    def cost(self, config):
        return taskgen.Cost(params=1, flops_per_step=super().cost(config).flops_per_step)


class WrongFlops(QuadraticFamily):
    def cost(self, config):
        return taskgen.Cost(params=super().cost(config).params, flops_per_step=10**12)


class Unseeded(QuadraticFamily):
    def sample(self, rng):
        config = super().sample(rng)
        config["noise_std"] = round(random.random(), 6)  # the global stream, not rng: not reproducible
        return config


def _status(report):
    return {r.name: r.status for r in report.results}


def test_a_family_that_keeps_the_contract_passes_every_check():
    report = check_family("quadratic", n_specs=2, seed=0)
    assert report.ok and [r.name for r in report.results] == list(CHECKS)
    assert _status(report) == {name: "ok" for name in CHECKS}
    assert all(r.detail == "2 specs" for r in report.results)
    assert report.task_ids == tuple(spec_from_seed(QuadraticFamily(), s).task_id
                                    for s in check_seeds(QuadraticFamily(), 2))


def test_a_cost_that_miscounts_parameters_is_named_exactly():
    family = WrongCost()
    with pytest.raises(FamilyCheckError) as err:
        check_family(family, n_specs=2)
    report = err.value.report
    assert [r.name for r in report.failures] == ["cost_params"]
    spec = spec_from_seed(family, check_seeds(family, 1)[0])
    task = family.build(spec)
    built = param_count(task.init(task.init_key()))
    detail = f"{spec.task_id}: cost() says 1 parameters, the built model has {built}"
    assert report.failures[0].detail == detail
    assert str(err.value) == f"family 'quadratic' fails 1 of {len(CHECKS)} checks: cost_params: {detail}"


def test_flops_far_from_xlas_count_and_an_unseeded_sampler_fail():
    report = check_family(WrongFlops(), n_specs=1, strict=False)
    assert [r.name for r in report.failures] == ["cost_flops"]
    assert "cost() says 1000000000000 FLOPs per step, XLA counts" in report.failures[0].detail
    assert report.failures[0].detail.endswith("allowed 1/20–20)")
    report = check_family(Unseeded(), n_specs=2, strict=False)
    assert _status(report)["sample_deterministic"] == "failed"
    assert "two samples from one seed differ" in report.failures[0].detail
    assert _status(report)["build"] == "skipped" and report.task_ids == ()


def test_functions_rebuilt_per_task_break_compiled_code_reuse():
    report = check_family(ToyFamily, n_specs=2, strict=False)  # its init and normalizer are fresh lambdas
    assert [r.name for r in report.failures] == ["static_key"]
    assert report.failures[0].detail.endswith("building the spec twice gives new function objects (init, "
                                              "normalizer): compiled code cannot be reused (cache the functions on "
                                              "the static key)")


def test_arguments_are_checked():
    with pytest.raises(taskgen.ArgumentTypeError, match=r"check_family\(\): family must be a Family"):
        check_family(3)
    with pytest.raises(ValueError, match=r"n_specs must be an integer ≥ 1, got 0"):
        check_family("quadratic", n_specs=0)
    with pytest.raises(taskgen.UnknownFamilyError, match="--plugin MODULE or TASKGEN_PLUGINS"):
        check_family("softmax_regression")


def test_command_prints_the_report_and_fails_in_one_line(monkeypatch):
    registry = registry_mod.Registry()
    registry.register(type("WrongCostFamily", (WrongCost,), {"name": "wrong_cost"}))
    monkeypatch.setattr(registry_mod, "_DEFAULT", registry)
    res = CliRunner().invoke(cli, ["check-family", "quadratic", "--specs", "1", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["ok"] is True and [c["status"] for c in out["checks"]] == ["ok"] * len(CHECKS)
    res = CliRunner().invoke(cli, ["check-family", "wrong_cost", "--specs", "1"])
    assert res.exit_code == 1
    assert res.stdout.splitlines()[0] == f"family wrong_cost v1: 1 specs, 1 of {len(CHECKS)} checks failed"
    assert "  failed  cost_params" in res.stdout
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith(
        f"Error: family 'wrong_cost' fails 1 of {len(CHECKS)} checks: cost_params: wrong_cost-")
