"""A pool of task specs: loading one (spec file, manifest or the default suite) and filtering it.

Filters are ``{column: [values]}`` over :data:`FILTER_COLUMNS` (values of one column are alternatives; every
column must match), plus limits on the family's analytic cost (``max_params``, ``max_flops``). Meta-training,
evaluation and the experiments all choose their tasks through :func:`filter_specs`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import taskgen
from taskgen import default_registry

FILTER_COLUMNS = ("family", "split", "dataset", "variant", "task_id")


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


def _column(spec, col: str, registry) -> str:
    if col in ("family", "split", "task_id"):
        return getattr(spec, col)
    family = registry.get(spec.family)
    if col == "variant":
        return family.variant(spec.config)
    return family.describe(spec.config).get("dataset", "")


def filter_specs(specs: Sequence, filters: Mapping[str, Sequence[str]] | None = None,
                 max_params: int | None = None, max_flops: int | None = None, registry=None) -> list:
    """The specs matching every filter (values of one column are alternatives), in their input order."""
    registry = registry or default_registry()
    filters = {k: set(v) for k, v in (filters or {}).items() if v}
    out = []
    for spec in specs:
        if any(_column(spec, col, registry) not in allowed for col, allowed in filters.items()):
            continue
        if max_params is not None or max_flops is not None:
            cost = registry.get(spec.family).cost(spec.config)
            if max_params is not None and cost.params > max_params:
                continue
            if max_flops is not None and cost.flops_per_step > max_flops:
                continue
        out.append(spec)
    return out


def filter_steps(specs: Sequence, filters: Mapping[str, Sequence[str]] | None = None,
                 max_params: int | None = None, max_flops: int | None = None, registry=None) -> list[tuple[str, int]]:
    """How many specs are left after each filter, applied one after the other in a fixed order (the columns of
    :data:`FILTER_COLUMNS` given in ``filters``, then ``max_params``, then ``max_flops``): ``[(label, count)]``,
    starting with ``("source", len(specs))``. Labels read like the command line: ``family=mlp|quadratic``,
    ``max_params<=20000``."""
    registry = registry or default_registry()
    steps = [("source", len(specs))]
    left = list(specs)
    for col in FILTER_COLUMNS:
        values = list((filters or {}).get(col) or ())
        if values:
            left = filter_specs(left, {col: values}, registry=registry)
            steps.append((f"{col}={'|'.join(values)}", len(left)))
    for name, limit in (("max_params", max_params), ("max_flops", max_flops)):
        if limit is not None:
            left = filter_specs(left, max_params=limit if name == "max_params" else None,
                                max_flops=limit if name == "max_flops" else None, registry=registry)
            steps.append((f"{name}<={limit}", len(left)))
    return steps


def no_specs_message(source: str, specs: Sequence, filters=None, max_params=None, max_flops=None) -> str:
    """The error when no spec of ``source`` passes the filters: each filter with the count it left, and the one
    that removed the last specs, e.g. ``no task specs left after filtering the default suite: 6000 specs ->
    split=meta_train 4800 -> family=mlp 0 (family=mlp removed the last 4800)``."""
    steps = filter_steps(specs, filters, max_params, max_flops)
    chain = " -> ".join([f"{steps[0][1]} specs"] + [f"{label} {n}" for label, n in steps[1:]])
    culprit = next(((label, prev) for (label, n), (_, prev) in zip(steps[1:], steps) if n == 0 and prev > 0), None)
    why = f" ({culprit[0]} removed the last {culprit[1]}; loosen it)" if culprit else ""
    return f"no task specs left after filtering {source}: {chain}{why}"
