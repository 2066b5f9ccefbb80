"""Choosing the task set of an evaluation: half "seen" (``meta_train``), half "unseen" (``meta_test``).

:func:`select_tasks` is deterministic in its arguments: specs are filtered (cost limits, optional column
filters), sorted by task id, and drawn by variant round robin (variants in a seeded random order, tasks within a
variant in a seeded random order), so a small task set still covers many kinds of task. Unseen tasks start with
the *held-out variants* — variants that have no ``meta_train`` spec at all in the pool — so the unseen half
includes at least one whole task kind that meta-training never saw, whenever the pool has one.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from lopt_trainer.common.task_pool import filter_specs
from taskgen import default_registry

SEEN, UNSEEN = "seen", "unseen"


@dataclasses.dataclass(frozen=True)
class EvalTask:
    """One task of an evaluation: its spec, ``group`` (``"seen"``/``"unseen"``) and family variant."""

    spec: object
    group: str
    variant: str

    @property
    def task_id(self) -> str:
        """The spec's task id."""
        return self.spec.task_id


def _variant(spec, registry) -> str:
    return registry.get(spec.family).variant(spec.config)


def _round_robin(specs, n: int, rng: np.random.Generator, registry, first_variants=()) -> list:
    by_variant = collections.defaultdict(list)
    for s in sorted(specs, key=lambda s: s.task_id):
        by_variant[_variant(s, registry)].append(s)
    names = sorted(by_variant)
    order = [names[i] for i in rng.permutation(len(names))]
    first = [v for v in order if v in set(first_variants)]
    order = first + [v for v in order if v not in set(first_variants)]
    queues = {v: [by_variant[v][i] for i in rng.permutation(len(by_variant[v]))] for v in order}
    out = []
    while len(out) < n and any(queues.values()):
        for v in order:
            if queues[v] and len(out) < n:
                out.append(queues[v].pop(0))
    return out


def split_pools(specs, *, max_params: int | None = 20_000, max_flops: int | None = 5_000_000,
                filters: dict | None = None, registry=None, family_limits: dict | None = None) -> tuple[list, list]:
    """``(seen pool, unseen pool)``: the ``meta_train`` and ``meta_test`` specs within the cost limits (the global
    ones, or a family's own in ``family_limits``, see :func:`~lopt_trainer.common.task_pool.limits_for`) that
    pass ``filters`` (its ``split`` column ignored), from which :func:`select_tasks` draws."""
    registry = registry or default_registry()
    other = {k: v for k, v in (filters or {}).items() if k != "split"}
    pool = filter_specs(specs, other, max_params, max_flops, registry, family_limits=family_limits)
    return [s for s in pool if s.split == "meta_train"], [s for s in pool if s.split == "meta_test"]


def select_tasks(specs, n_tasks: int = 100, seed: int = 0, *, max_params: int | None = 20_000,
                 max_flops: int | None = 5_000_000, filters: dict | None = None, registry=None,
                 family_limits: dict | None = None) -> list[EvalTask]:
    """``n_tasks`` tasks: ``n_tasks // 2`` seen (``meta_train``) and the rest unseen (``meta_test``).

    ``max_params`` / ``max_flops`` keep the evaluation CPU-feasible (None = no limit; ``family_limits``:
    ``{family: {"max_params": int, "max_flops": int}}`` in place of them for those families); ``filters`` is
    ``{column: [values]}`` over ``family``, ``dataset``, ``variant``, ``task_id`` (the ``split`` column is set by
    this function). When one split has too few specs the other does not fill in: the set is smaller. Returns
    seen tasks first, then unseen, each in draw order.
    """
    registry = registry or default_registry()
    seen_pool, unseen_pool = split_pools(specs, max_params=max_params, max_flops=max_flops, filters=filters,
                                         registry=registry, family_limits=family_limits)
    all_train_variants = {_variant(s, registry) for s in specs if s.split == "meta_train"}
    held_out = sorted({_variant(s, registry) for s in unseen_pool} - all_train_variants)
    n_seen = n_tasks // 2
    seen = _round_robin(seen_pool, n_seen, np.random.default_rng([int(seed), 1]), registry)
    unseen = _round_robin(unseen_pool, n_tasks - n_seen, np.random.default_rng([int(seed), 2]), registry,
                          first_variants=held_out)
    return ([EvalTask(s, SEEN, _variant(s, registry)) for s in seen]
            + [EvalTask(s, UNSEEN, _variant(s, registry)) for s in unseen])


def held_out_variants(tasks: list[EvalTask], specs) -> list[str]:
    """The variants of ``tasks`` that have no ``meta_train`` spec in ``specs``."""
    registry = default_registry()
    train = {_variant(s, registry) for s in specs if s.split == "meta_train"}
    return sorted({t.variant for t in tasks if t.group == UNSEEN and t.variant not in train})
