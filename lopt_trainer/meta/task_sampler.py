"""Filtered specs → groups of one compiled shape → tasks for estimator slots.

* The pool comes filtered (:mod:`lopt_trainer.common.task_pool`).
* Groups: specs whose family exposes ``static_key(config)`` are grouped by it (equal keys share compiled code);
  a group is drawn by family first (uniformly), then by spec within the family.
  For other families the task is built to read its ``static_key`` when the family has at most ``build_limit``
  specs in the pool (default 64); beyond that each spec is a group of its own (its slots train the same task
  from different inits).
* :class:`TaskSampler` is stateless apart from a cache of built tasks: every draw takes a ``numpy`` Generator
  that the trainer derives from ``(seed, outer step, purpose, estimator)`` (:func:`rng_for`), so the sampler
  state saved in a checkpoint is just which group and tasks each slot holds (:class:`SamplerState`).
* Tasks of one group whose split arrays differ in shape (e.g. another ``train_size``) cannot be vmapped together:
  a slot only takes tasks whose data signature equals the group's *anchor* task; others are redrawn.
"""

from __future__ import annotations

import collections
import dataclasses
import json
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from taskgen import build_task, default_registry

_PURPOSES = {"group": 1, "slot": 2, "horizon": 3, "eval": 4}


def rng_for(seed: int, step: int, purpose: str, index: int = 0) -> np.random.Generator:
    """The NumPy generator of one host-side decision (deterministic in its arguments)."""
    return np.random.default_rng([int(seed), int(step), _PURPOSES[purpose], int(index)])


def group_key(spec, registry=None, task=None) -> str:
    """The grouping key of a spec: ``family.static_key(config)`` when the family has one, else the built
    ``task.static_key`` when ``task`` is given, else its task id."""
    family = (registry or default_registry()).get(spec.family)
    fn = getattr(family, "static_key", None)
    if callable(fn):
        return str(fn(spec.config))
    if task is not None:
        return f"{spec.family}:{task.static_key}"
    return f"task:{spec.task_id}"


def data_signature(task, splits: Sequence[str]) -> tuple:
    """Tree structure, shapes and dtypes of the given splits of a task (equal → stackable)."""
    leaves, treedef = jax.tree_util.tree_flatten({s: task.splits[s] for s in splits})
    return (str(treedef), tuple((tuple(np.shape(x)), str(jnp.result_type(x))) for x in leaves))


@dataclasses.dataclass
class SamplerState:
    """What each estimator holds: its group key, anchor task, slot task ids, which slots have ended, and the
    outer step at which its group was drawn."""

    groups: list = dataclasses.field(default_factory=list)
    anchors: list = dataclasses.field(default_factory=list)
    slot_tasks: list = dataclasses.field(default_factory=list)
    done: list = dataclasses.field(default_factory=list)
    drawn: list = dataclasses.field(default_factory=list)

    def to_json(self) -> str:
        """JSON of the state."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SamplerState":
        """Inverse of :meth:`to_json`."""
        return cls(**json.loads(text))


class TaskSampler:
    """Draws groups and tasks from a fixed list of specs (see the module docstring).

    ``builder(spec) -> Task`` defaults to ``taskgen.build_task``; built tasks are kept in an LRU cache of
    ``cache_size`` entries.
    """

    def __init__(self, specs: Sequence, builder: Callable | None = None, registry=None, cache_size: int = 256,
                 build_limit: int = 64):
        if not specs:
            raise ValueError("no task specs left after filtering; loosen the filters")
        self.specs = sorted(specs, key=lambda s: s.task_id)
        self.by_id = {s.task_id: s for s in self.specs}
        self.builder = builder or build_task
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self._cache_size = cache_size
        registry = registry or default_registry()
        per_family = collections.Counter(s.family for s in self.specs)
        groups: dict[str, list[str]] = {}
        for spec in self.specs:
            has_key = callable(getattr(registry.get(spec.family), "static_key", None))
            task = None if has_key or per_family[spec.family] > build_limit else self.task(spec.task_id)
            groups.setdefault(group_key(spec, registry, task), []).append(spec.task_id)
        self.groups = groups
        self.by_family: dict[str, list[str]] = {}
        for spec in self.specs:
            self.by_family.setdefault(spec.family, []).append(spec.task_id)
        self.families = sorted(self.by_family)
        self.group_of = {tid: key for key, ids in groups.items() for tid in ids}

    def task(self, task_id: str):
        """The built task of ``task_id`` (cached)."""
        if task_id in self._cache:
            self._cache.move_to_end(task_id)
            return self._cache[task_id]
        task = self.builder(self.by_id[task_id])
        self._cache[task_id] = task
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return task

    def choose_group(self, rng: np.random.Generator, family: str | None = None) -> tuple[str, str]:
        """``(group key, anchor task id)``: a uniformly drawn family (or the given ``family``), then a uniformly
        drawn spec of it, and its group. Families are drawn uniformly so that each is equally likely even in a
        pool dominated by one family (the default suite has more 2-D and quadratic specs than network specs within
        a size limit); a draw of a few groups may still leave families out, which ``family_draw="stratified"``
        prevents by passing each estimator's ``family`` (:func:`lopt_trainer.meta.plan.family_for`). ``KeyError``
        names a ``family`` the pool lacks."""
        if family is None:
            family = self.families[int(rng.integers(len(self.families)))]
        elif family not in self.by_family:
            raise KeyError(f"family {family!r} has no task in the pool (families: {', '.join(self.families)})")
        ids = self.by_family[family]
        anchor = ids[int(rng.integers(len(ids)))]
        return self.group_of[anchor], anchor

    def family_of(self, task_id: str) -> str:
        """The family name of a task id of the pool."""
        return self.by_id[task_id].family

    def choose_task(self, rng: np.random.Generator, group: str, anchor: str, splits: Sequence[str],
                    tries: int = 8) -> str:
        """A task id of ``group`` whose data signature matches the anchor's (the anchor after ``tries`` misses)."""
        ids = self.groups[group]
        want = data_signature(self.task(anchor), splits)
        for _ in range(tries):
            tid = ids[int(rng.integers(len(ids)))]
            if tid == anchor or data_signature(self.task(tid), splits) == want:
                return tid
        return anchor


def slot_data(tasks: Sequence, splits: Sequence[str]):
    """``(data, axes)`` for an estimator: per split, the arrays shared by every slot (axis None, when all tasks
    hold the very same arrays) or stacked along a new leading slot axis (axis 0)."""
    data, axes = {}, {}
    for split in splits:
        parts = [t.splits[split] for t in tasks]
        leaves = [jax.tree_util.tree_leaves(p) for p in parts]
        if all(all(a is b for a, b in zip(leaves[0], other)) for other in leaves[1:]):
            data[split], axes[split] = parts[0], None
        else:
            data[split] = jax.tree_util.tree_map(lambda *xs: jax.device_put(np.stack([np.asarray(x) for x in xs])), *parts)
            axes[split] = 0
    return data, axes


def slot_data_shapes(tasks: Sequence, splits: Sequence[str]):
    """``(shapes, axes)``: what :func:`slot_data` gives for ``tasks``, as ``jax.ShapeDtypeStruct`` leaves (for
    compiling ahead of time; no array is stacked or copied)."""
    shapes, axes = {}, {}
    for split in splits:
        parts = [t.splits[split] for t in tasks]
        leaves = [jax.tree_util.tree_leaves(p) for p in parts]
        shared = all(all(a is b for a, b in zip(leaves[0], other)) for other in leaves[1:])
        if shared:  # passed as they are: their own dtypes
            shapes[split] = jax.tree_util.tree_map(
                lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype if hasattr(x, "dtype") else jnp.result_type(x),
                                               weak_type=bool(getattr(x, "weak_type", False))), parts[0])
        else:  # stacked and put on the device: canonical dtypes (int64 → int32 without x64)
            shapes[split] = jax.tree_util.tree_map(
                lambda x: jax.ShapeDtypeStruct((len(tasks),) + np.shape(x),
                                               jax.dtypes.canonicalize_dtype(np.asarray(x).dtype)), parts[0])
        axes[split] = None if shared else 0
    return shapes, axes
