"""A pool of task specs: loading one (spec file, manifest or the default suite) and filtering it.

Filters are ``{column: [values]}`` over :data:`FILTER_COLUMNS` (values of one column are alternatives; every
column must match), plus limits on the family's analytic cost (``max_params``, ``max_flops``), which
``family_limits`` (``{family: {"max_params": int, "max_flops": int}}``) overrides family by family: a family whose
tasks are costlier per parameter (the RNN language models) can get its own limits while the others keep the
global ones. Meta-training, evaluation and the experiments all choose their tasks through :func:`filter_specs`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import taskgen
from families.errors import short_repr
from taskgen import default_registry

FILTER_COLUMNS = ("family", "split", "dataset", "variant", "task_id")
LIMIT_KEYS = ("max_params", "max_flops")
"""The cost limits a ``family_limits`` entry may set."""
_INT64_MAX = 2**63 - 1


def load_pool(suite=None, manifest=None) -> list:
    """Specs of a spec file (``suite``), a manifest, or the default suite when neither is given."""
    return taskgen.load_specs(manifest or suite)


def parse_filters(items: Iterable[str]) -> dict[str, list[str]]:
    """``["family=mlp", "family=quadratic", "split=meta_train"]`` → ``{"family": [...], "split": [...]}``;
    ``ValueError`` naming an item without ``=`` or an unknown column."""
    out: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"filter {item!r} must look like column=value")
        col, value = item.split("=", 1)
        col = col.strip()
        if col not in FILTER_COLUMNS:
            raise ValueError(f"unknown filter column {col!r}; use one of {list(FILTER_COLUMNS)}")
        out.setdefault(col, []).append(value.strip())
    return out


def check_family_limits(value, setting: str = "family_limits") -> dict[str, dict[str, int]]:
    """``value`` checked as per-family cost limits and returned as a plain dict: ``{family: {"max_params": int,
    "max_flops": int}}`` — any family name (a string: plugin families count too), each entry one or both of
    :data:`LIMIT_KEYS` (a limit left out is the global one), each limit an integer ``1 <= n < 2**63`` (not
    ``true``, not ``8.0``). ``None`` is ``{}``. ``ValueError`` naming ``setting``, the family, the key and the
    allowed range otherwise."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{setting} must be an object {{family: {{\"max_params\": int, \"max_flops\": int}}}}, "
                         f"got {short_repr(value)}")
    out = {}
    for family, limits in value.items():
        if not isinstance(family, str) or not family:
            raise ValueError(f"{setting}: family names must be non-empty strings, got {short_repr(family)}")
        if not isinstance(limits, Mapping) or not limits:
            raise ValueError(f"{setting}[{family!r}] must be an object with max_params and/or max_flops, got "
                             f"{short_repr(limits)}")
        unknown = sorted(set(limits) - set(LIMIT_KEYS))
        if unknown:
            raise ValueError(f"{setting}[{family!r}]: unknown key {short_repr(unknown[0])}; allowed: "
                             f"{', '.join(LIMIT_KEYS)}")
        for key, n in limits.items():
            if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= _INT64_MAX:
                raise ValueError(f"{setting}[{family!r}][{key!r}] must be an integer in [1, 2**63), got "
                                 f"{short_repr(n)}")
        out[family] = {k: int(limits[k]) for k in LIMIT_KEYS if k in limits}
    return out


def limits_for(family: str, max_params: int | None, max_flops: int | None,
               family_limits: Mapping | None = None) -> tuple[int | None, int | None]:
    """``(max_params, max_flops)`` that apply to ``family``: its ``family_limits`` entry where it sets one, else
    the global limit (None = no limit)."""
    own = (family_limits or {}).get(family) or {}
    return own.get("max_params", max_params), own.get("max_flops", max_flops)


def _column(spec, col: str, registry) -> str:
    if col in ("family", "split", "task_id"):
        return getattr(spec, col)
    family = registry.get(spec.family)
    if col == "variant":
        return family.variant(spec.config)
    return family.describe(spec.config).get("dataset", "")


def filter_specs(specs: Sequence, filters: Mapping[str, Sequence[str]] | None = None,
                 max_params: int | None = None, max_flops: int | None = None, registry=None,
                 family_limits: Mapping | None = None) -> list:
    """The specs matching every filter (values of one column are alternatives) and their family's cost limits
    (:func:`limits_for`: ``family_limits`` over the global ``max_params`` / ``max_flops``; None = no limit), in
    their input order."""
    registry = registry or default_registry()
    filters = {k: set(v) for k, v in (filters or {}).items() if v}
    out = []
    for spec in specs:
        if any(_column(spec, col, registry) not in allowed for col, allowed in filters.items()):
            continue
        if within_limits(spec, *limits_for(spec.family, max_params, max_flops, family_limits), registry):
            out.append(spec)
    return out


def within_limits(spec, max_params: int | None, max_flops: int | None, registry) -> bool:
    """Whether the analytic cost of ``spec`` (parameters, FLOPs per step) is within the limits (None = none)."""
    if max_params is None and max_flops is None:
        return True
    cost = registry.get(spec.family).cost(spec.config)
    return ((max_params is None or cost.params <= max_params)
            and (max_flops is None or cost.flops_per_step <= max_flops))


def filter_steps(specs: Sequence, filters: Mapping[str, Sequence[str]] | None = None,
                 max_params: int | None = None, max_flops: int | None = None, registry=None,
                 family_limits: Mapping | None = None) -> list[tuple[str, int]]:
    """How many specs are left after each filter, applied one after the other in a fixed order (the columns of
    :data:`FILTER_COLUMNS` given in ``filters``, then ``max_params``, then ``max_flops``): ``[(label, count)]``,
    starting with ``("source", len(specs))``. Labels read like the command line: ``family=mlp|quadratic``,
    ``max_params<=20000``; a limit that ``family_limits`` overrides names the families where it differs, e.g.
    ``max_params<=20000 (word_lm<=100000)``."""
    registry = registry or default_registry()
    steps = [("source", len(specs))]
    left = list(specs)
    for col in FILTER_COLUMNS:
        values = list((filters or {}).get(col) or ())
        if values:
            left = filter_specs(left, {col: values}, registry=registry)
            steps.append((f"{col}={'|'.join(values)}", len(left)))
    for name in LIMIT_KEYS:
        limit = max_params if name == "max_params" else max_flops
        own = {f: lim[name] for f, lim in (family_limits or {}).items() if lim.get(name, limit) != limit}
        if limit is None and not own:
            continue
        only = {f: {name: n} for f, n in own.items()}
        left = filter_specs(left, registry=registry, family_limits=only,
                            **{name: limit, "max_flops" if name == "max_params" else "max_params": None})
        label = f"{name}<={limit if limit is not None else 'any'}"
        label += f" ({', '.join(f'{f}<={n}' for f, n in sorted(own.items()))})" if own else ""
        steps.append((label, len(left)))
    return steps


def no_specs_message(source: str, specs: Sequence, filters=None, max_params=None, max_flops=None,
                     family_limits=None) -> str:
    """The error when no spec of ``source`` passes the filters: each filter with the count it left, and the one
    that removed the last specs, e.g. ``no task specs left after filtering the default suite: 6000 specs ->
    split=meta_train 4800 -> family=mlp 0 (family=mlp removed the last 4800)``."""
    steps = filter_steps(specs, filters, max_params, max_flops, family_limits=family_limits)
    chain = " -> ".join([f"{steps[0][1]} specs"] + [f"{label} {n}" for label, n in steps[1:]])
    culprit = next(((label, prev) for (label, n), (_, prev) in zip(steps[1:], steps) if n == 0 and prev > 0), None)
    why = f" ({culprit[0]} removed the last {culprit[1]}; loosen it)" if culprit else ""
    return f"no task specs left after filtering {source}: {chain}{why}"
