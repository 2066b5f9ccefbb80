"""``check_family``: does a family keep the contract the rest of the toolkit relies on?

A family that breaks the contract often works at first and fails far away: a ``cost()`` that says 1 parameter for
a 650-parameter model builds and trains, but ``--max-params`` then selects the wrong tasks; a sampler that reads
the clock makes a suite that cannot be regenerated. :func:`check_family` samples a few specs from fixed seeds,
builds them on their real data and checks, in this order:

``sample_deterministic``
    the same seed gives the same config (canonical JSON bytes).
``validate_round_trip``
    ``validate`` accepts every sampled config, also after a trip through JSON.
``config_space_bounds``
    every sampled config lies inside the declared ``config_space()`` (the generic check, even when ``validate``
    is overridden).
``spec_round_trip``
    the spec's JSON line reads back to the same bytes and task id.
``manifest_columns``
    ``variant`` is a string and ``describe`` gives ``dataset`` (str), ``input_shape`` (list of int) and
    ``batch_size`` (int ≥ 1), as the Arrow manifest stores them.
``build``
    ``build`` makes a :class:`Task` with the four splits.
``init_loss_finite``
    ``init(init_key())`` gives finite parameters, and the loss and its gradients on a train batch are finite.
``cost_params``
    ``cost(config).params`` equals the built model's parameter count exactly.
``cost_flops``
    ``cost(config).flops_per_step`` is within a factor :data:`FLOPS_TOLERANCE` of XLA's count for one jitted
    ``value_and_grad`` of the loss (or within :data:`FLOPS_SLACK` of it, for tiny problems where XLA's count is
    mostly bookkeeping). The analytic count is an estimate (about 3 × the forward FLOPs): over the built-in
    families' sampled specs the ratio analytic / XLA measured 0.07–6.5 (XLA counts work the formulas leave out,
    e.g. building a quadratic's matrix; recurrent models count matmuls XLA fuses), so the check catches counts off
    by orders of magnitude, not estimates. Skipped where the XLA backend reports no FLOPs.
``static_key``
    building a spec twice gives the same ``static_key`` and the same function objects, and tasks with equal static
    keys share ``init``/``loss``/``sample_batch``/``normalizer`` and have equal parameter and batch shapes
    (compiled code is reused across them, so anything else is a silent bug).

Command line: ``taskgen check-family NAME [--specs N] [--seed S] [--json]``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

from families.errors import short_text

FLOPS_TOLERANCE = 20.0
"""Largest accepted ratio, either way, between a family's analytic FLOPs per step and XLA's count."""
FLOPS_SLACK = 1000
"""FLOPs by which the analytic count may differ from XLA's whatever the ratio (tiny problems)."""
CHECKS = ("sample_deterministic", "validate_round_trip", "config_space_bounds", "spec_round_trip",
          "manifest_columns", "build", "init_loss_finite", "cost_params", "cost_flops", "static_key")
"""The checks of :func:`check_family`, in the order they run and are reported."""


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One check over every sampled spec: ``status`` is ``ok``, ``failed`` or ``skipped``; ``detail`` says what
    was seen (for a failure: the first failing task id and why)."""

    name: str
    status: str
    detail: str


@dataclasses.dataclass(frozen=True)
class FamilyCheckReport:
    """What :func:`check_family` found: the family, the specs it checked and one :class:`CheckResult` per check."""

    family: str
    version: int
    task_ids: tuple
    results: tuple

    @property
    def failures(self) -> list[CheckResult]:
        """The checks that failed."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not self.failures

    def to_dict(self) -> dict:
        """The report as plain JSON data (``taskgen check-family --json``)."""
        return {"family": self.family, "version": self.version, "ok": self.ok, "task_ids": list(self.task_ids),
                "checks": [dataclasses.asdict(r) for r in self.results]}

    def lines(self) -> list[str]:
        """The report as text, one line per check."""
        head = f"family {self.family} v{self.version}: {len(self.task_ids)} specs, " \
               f"{len(self.failures)} of {len(self.results)} checks failed"
        return [head] + [f"  {r.status:<7} {r.name:<20} {r.detail}" for r in self.results]

    def raise_for_failures(self) -> None:
        """Raise :class:`FamilyCheckError` if any check failed."""
        if not self.ok:
            raise FamilyCheckError(self)


class FamilyCheckError(ValueError):
    """A family that fails some of :func:`check_family`'s checks; the message lists them, ``report`` holds all."""

    def __init__(self, report: FamilyCheckReport):
        self.report = report
        listed = "; ".join(f"{r.name}: {r.detail}" for r in report.failures)
        super().__init__(f"family {report.family!r} fails {len(report.failures)} of {len(report.results)} checks: "
                         f"{listed}")


def param_count(params) -> int:
    """Number of scalars in a parameter pytree."""
    import jax
    import numpy as np

    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(params)))


def spec_from_seed(family, seed: int):
    """The spec of ``family`` sampled from ``seed`` (validated; split ``meta_train``)."""
    from families.sampling import SpecRNG
    from taskgen.spec import TaskSpec

    config = family.sample(SpecRNG(seed))
    family.validate(config)
    return TaskSpec.create(family.name, family.version, seed, config)


def check_seeds(family, n_specs: int, seed: int = 0) -> list[int]:
    """The ``n_specs`` spec seeds :func:`check_family` uses for ``family`` and ``seed`` (fixed forever)."""
    from families.sampling import derive_seed

    return [derive_seed("check_family", family.name, seed, i) for i in range(n_specs)]


def loss_and_grads(task, key_seed: int = 0):
    """``(loss, grads, xla_flops)`` of one jitted ``value_and_grad`` of ``task.loss`` at ``init(init_key())`` on
    a train batch (``xla_flops`` is None where the backend does not count)."""
    import jax

    params = task.init(task.init_key())
    batch = task.batch("train", jax.random.PRNGKey(key_seed))
    key = jax.random.PRNGKey(key_seed + 1)
    compiled = jax.jit(jax.value_and_grad(task.loss)).lower(params, batch, key).compile()
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else None
    flops = analysis.get("flops") if isinstance(analysis, dict) else None
    loss, grads = compiled(params, batch, key)
    return params, loss, grads, (float(flops) if flops is not None and flops >= 0 else None)


def all_finite(tree) -> bool:
    """Whether every leaf of ``tree`` is finite."""
    import jax
    import numpy as np

    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree_util.tree_leaves(tree))


class _Checks:
    """Collects per-spec outcomes into one :class:`CheckResult` per check."""

    def __init__(self):
        self.failed: dict[str, str] = {}
        self.skipped: dict[str, str] = {}
        self.passed: dict[str, int] = {}

    def run(self, name: str, task_id: str, fn: Callable[[], str | None]) -> bool:
        """Run one check on one spec: ``fn`` returns None (passed) or the reason it failed, or raises."""
        try:
            reason = fn()
        except Exception as e:  # a family's bug of any kind is this check's failure, not a crash of the checker
            reason = f"{type(e).__name__}: {short_text(e, 300)}"
        if reason is None:
            self.passed[name] = self.passed.get(name, 0) + 1
            return True
        self.failed.setdefault(name, f"{task_id}: {reason}")
        return False

    def skip(self, name: str, why: str) -> None:
        """Mark ``name`` as not checkable (unless it already failed)."""
        self.skipped.setdefault(name, why)

    def results(self) -> tuple:
        out = []
        for name in CHECKS:
            if name in self.failed:
                out.append(CheckResult(name, "failed", self.failed[name]))
            elif name in self.passed:
                out.append(CheckResult(name, "ok", f"{self.passed[name]} specs"))
            else:
                out.append(CheckResult(name, "skipped", self.skipped.get(name, "no spec got this far")))
        return tuple(out)


def check_family(family, n_specs: int = 3, seed: int = 0, *, strict: bool = True, registry=None,
                 flops_tolerance: float = FLOPS_TOLERANCE) -> FamilyCheckReport:
    """Check that ``family`` keeps the family contract on ``n_specs`` specs sampled from fixed seeds (derived from
    ``seed``): the checks of :data:`CHECKS`, described in this module's docstring.

    ``family`` is a :class:`taskgen.Family` instance or subclass, or a family name looked up in ``registry``
    (default: the process's registry, plugins included). Builds use real data (the dataset must be cached or
    fetchable). Returns a :class:`FamilyCheckReport`; with ``strict`` (the default) a failed check raises
    :class:`FamilyCheckError` listing every failure instead.
    """
    from families.base import Family, Task
    from families.space import validate_config
    from taskgen.arguments import ArgumentTypeError
    from taskgen.registry import _instantiate, default_registry

    if isinstance(family, str):
        family = (registry or default_registry()).get(family)
    elif isinstance(family, Family) or (isinstance(family, type) and issubclass(family, Family)):
        family = _instantiate(family)
    else:
        raise ArgumentTypeError(f"check_family(): family must be a Family (instance or subclass) or a family name, "
                                f"got {type(family).__name__}")
    if type(n_specs) is not int or n_specs < 1:
        raise ValueError(f"check_family(): n_specs must be an integer ≥ 1, got {n_specs!r}")

    checks = _Checks()
    specs, tasks = [], []
    for spec_seed in check_seeds(family, n_specs, seed):
        where = f"seed {spec_seed}"
        configs = []
        ok = checks.run("sample_deterministic", where, lambda: _same_samples(family, spec_seed, configs))
        if not ok:
            continue
        config = configs[0]
        checks.run("validate_round_trip", where, lambda: _validates(family, config))
        checks.run("config_space_bounds", where, lambda: validate_config(family.config_space(), config))
        made = []
        if not checks.run("spec_round_trip", where, lambda: _spec_round_trip(family, spec_seed, config, made)):
            continue
        spec = made[0]
        specs.append(spec)
        checks.run("manifest_columns", spec.task_id, lambda: _manifest_columns(family, config))
        built = []
        if not checks.run("build", spec.task_id, lambda: _build(family, spec, built, Task)):
            for name in ("init_loss_finite", "cost_params", "cost_flops", "static_key"):
                checks.skip(name, f"{spec.task_id} did not build")
            continue
        task = built[0]
        tasks.append(task)
        measured = []
        if not checks.run("init_loss_finite", spec.task_id, lambda: _finite(task, measured)):
            continue
        params, flops = measured
        cost = []
        checks.run("cost_params", spec.task_id, lambda: _cost_params(family, config, params, cost))
        if flops is None:
            checks.skip("cost_flops", "the XLA backend reports no FLOPs")
        elif cost:
            checks.run("cost_flops", spec.task_id, lambda: _cost_flops(cost[0].flops_per_step, flops,
                                                                        flops_tolerance))
        checks.run("static_key", spec.task_id, lambda: _rebuild_shares(family, spec, task))
    _static_key_groups(checks, tasks)
    report = FamilyCheckReport(family.name, family.version, tuple(s.task_id for s in specs), checks.results())
    if strict:
        report.raise_for_failures()
    return report


def _same_samples(family, seed, out):
    from families.sampling import SpecRNG
    from taskgen.spec import canonical_json

    first, second = family.sample(SpecRNG(seed)), family.sample(SpecRNG(seed))
    a, b = canonical_json(first), canonical_json(second)
    out.append(first)
    return None if a == b else f"two samples from one seed differ: {short_text(a, 80)} vs {short_text(b, 80)}"


def _validates(family, config):
    family.validate(config)
    family.validate(json.loads(json.dumps(config)))


def _spec_round_trip(family, seed, config, out):
    from taskgen.spec import TaskSpec

    spec = TaskSpec.create(family.name, family.version, seed, config)
    back = TaskSpec.from_json(spec.to_json())
    out.append(spec)
    if back.to_json() != spec.to_json() or back.task_id != spec.task_id:
        return "the spec's JSON line does not read back to the same spec"
    return None


def _manifest_columns(family, config):
    variant = family.variant(config)
    if not isinstance(variant, str) or not variant:
        return f"variant() gave {variant!r}, not a non-empty string"
    desc = family.describe(config)
    shape = desc.get("input_shape", [])
    if not isinstance(desc.get("dataset", ""), str):
        return f"describe()['dataset'] is {desc.get('dataset')!r}, not a string"
    if not isinstance(shape, (list, tuple)) or not all(type(d) is int and d >= 0 for d in shape):
        return f"describe()['input_shape'] is {shape!r}, not a list of non-negative ints"
    batch = desc.get("batch_size", 1)
    if type(batch) is not int or batch < 1:
        return f"describe()['batch_size'] is {batch!r}, not an int ≥ 1"
    return None


def _build(family, spec, out, task_type):
    task = family.build(spec)
    out.append(task)
    if not isinstance(task, task_type):
        return f"build() returned {type(task).__name__}, not a taskgen Task"
    if type(task.batch_size) is not int or task.batch_size < 1:
        return f"Task.batch_size is {task.batch_size!r}, not an int ≥ 1"
    return None


def _finite(task, out):
    import numpy as np

    params, loss, grads, flops = loss_and_grads(task)
    out.extend([params, flops])
    if not all_finite(params):
        return "init(init_key()) gave parameters that are not finite"
    if np.ndim(loss) != 0:
        return f"loss() gave shape {np.shape(loss)}, not a scalar"
    if not np.isfinite(float(loss)):
        return f"loss at init is {float(loss)}"
    if not all_finite(grads):
        return "gradients at init are not finite"
    return None


def _cost_params(family, config, params, out):
    cost = family.cost(config)
    out.append(cost)
    built = param_count(params)
    if cost.params != built:
        return f"cost() says {cost.params} parameters, the built model has {built}"
    return None


def _cost_flops(analytic: int, xla: float, tolerance: float):
    if abs(analytic - xla) <= FLOPS_SLACK or (analytic > 0 and xla / tolerance <= analytic <= xla * tolerance):
        return None
    return f"cost() says {analytic} FLOPs per step, XLA counts {xla:.0f} for value_and_grad of the loss " \
           f"(ratio {analytic / xla if xla else float('inf'):.3g}, allowed 1/{tolerance:g}–{tolerance:g})"


def _shapes(task):
    import jax

    params = jax.eval_shape(task.init, task.init_key())
    batch = jax.eval_shape(task.sample_batch, task.splits["train"], jax.random.PRNGKey(0))
    as_list = lambda tree: [(x.shape, str(x.dtype)) for x in jax.tree_util.tree_leaves(tree)]  # noqa: E731
    return as_list(params), as_list(batch)


_FUNCTIONS = ("init", "loss", "sample_batch", "normalizer")


def _rebuild_shares(family, spec, task):
    again = family.build(spec)
    if again.static_key != task.static_key:
        return "building the spec twice gives different static keys"
    differ = [f for f in _FUNCTIONS if getattr(again, f) is not getattr(task, f)]
    if differ:
        return f"building the spec twice gives new function objects ({', '.join(differ)}): compiled code cannot " \
               "be reused (cache the functions on the static key)"
    hash(task.static_key)
    return None


def _static_key_groups(checks: _Checks, tasks) -> None:
    groups: dict = {}
    for task in tasks:
        groups.setdefault(task.static_key, []).append(task)
    for group in groups.values():
        first = group[0]
        for other in group[1:]:
            checks.run("static_key", other.spec.task_id, lambda: _same_group(first, other))


def _same_group(first, other):
    differ = [f for f in _FUNCTIONS if getattr(first, f) is not getattr(other, f)]
    if differ:
        return f"shares its static key with {first.spec.task_id} but not its functions ({', '.join(differ)})"
    if _shapes(first) != _shapes(other):
        return f"shares its static key with {first.spec.task_id} but its parameter or batch shapes differ"
    return None
