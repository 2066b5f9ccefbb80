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
