"""The yardstick's two frozen task sets, ``valid`` (to choose θ, settings and branches) and ``test`` (for claims).

Both are drawn from the distribution meta-training draws from: the 12 built-in families, each under the
recipe's cost limits (:data:`DEFAULT_LIMITS`, :data:`FAMILY_LIMITS`), without the family variants the default
suite holds out of ``meta_train`` (those are never trained on, so they are another question). The default suite's
``meta_test`` split holds too few tasks of some families within the limits (char_lm and mlp_vae: 4), so the
sets are sampled fresh, from a seed stream of their own::

    spec seed i of family f = derive_seed("yardstick", SET_SEED, f, i)      i = 0, 1, 2, …

Spec ``i`` is kept when it is within its family's limits, its variant is not held out, and neither its task id
nor its (family, config) occurs in the default suite (any split) or earlier in the stream. The kept specs of each
family go to the sets in the blocks of :data:`LAYOUT`: 10 per family to ``valid`` and 20 to ``test`` (120 and 240
tasks), stratified by family and disjoint from each other and from every task the recipe trains on.

The sets ship as spec files in the package (``lopt_trainer/data/yardstick/{valid,test}.jsonl``) with their
sha256 in ``sets.json``; :func:`load_task_set` checks it, so an edited set is refused by name.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from families.sampling import SpecRNG, derive_seed
from lopt_trainer.common.task_pool import limits_for, within_limits
from lopt_trainer.evaluation.tasks import EvalTask
from taskgen import TaskSpec, default_registry
from taskgen.specfile import atomic_write_bytes, read_specs, specs_to_jsonl
from taskgen.suite import DEFAULT_HELD_OUT_VARIANTS

__all__ = ["SET_NAMES", "FAMILIES", "DEFAULT_LIMITS", "FAMILY_LIMITS", "TaskSetError", "sample_task_sets",
           "load_task_set", "task_set_tasks", "write_task_sets", "DATA_DIR", "source_tasks", "source_label"]

SET_NAMES = ("valid", "test")
FAMILIES = ("char_lm", "conv_fc", "conv_pooling", "maf", "mlp", "mlp_ae", "mlp_vae", "nvp", "quadratic",
            "rnn_text_classification", "twod", "word_lm")
"""The 12 built-in families the recipe meta-trains on."""
DEFAULT_LIMITS = {"max_params": 20_000, "max_flops": 5_000_000}
FAMILY_LIMITS = {
    "char_lm": {"max_params": 20_000, "max_flops": 20_000_000},
    "mlp_vae": {"max_params": 20_000, "max_flops": 10_000_000},
    "rnn_text_classification": {"max_params": 20_000, "max_flops": 10_000_000},
    "word_lm": {"max_params": 100_000, "max_flops": 100_000_000},
}
"""The recipe's per-family cost limits (in place of :data:`DEFAULT_LIMITS` for these families)."""
SET_SEED = 0
MAX_DRAWS = 20_000
"""Draws per family before giving up (a family whose samples almost never fit the limits)."""
DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "yardstick"
INDEX_FILE = "sets.json"
LAYOUT = (("valid", 4), ("test", 10), ("valid", 6), ("test", 10))
"""The frozen sets' blocks of each family's stream, in order: positions 0–3 to valid, 4–13 to test, 14–19 to
valid, 20–29 to test. Sets only grow: to enlarge one, append a block (positions 30 on) and keep these, so that
:func:`sample_task_sets` reproduces the frozen files as prefixes and every committed result stays a subset."""


class TaskSetError(ValueError):
    """A task set that is unknown, missing, or whose bytes differ from the recorded digest."""


def _excluded(suite_specs) -> tuple[set, set]:
    ids = {s.task_id for s in suite_specs}
    configs = {(s.family, s.config_json) for s in suite_specs}
    return ids, configs


def sample_task_sets(suite_specs, *, families=FAMILIES, seed: int = SET_SEED, registry=None,
                     layout=LAYOUT) -> dict:
    """``{"valid": [TaskSpec], "test": [TaskSpec]}`` sampled as the module docstring says.

    Args:
      suite_specs: the specs the sets must not share a task id or a (family, config) with (the default suite).
      families: the families to draw from, in order.
      seed: the sets' seed (``SET_SEED``).
      registry: the family registry (the default one).
      layout: ``((set name, tasks per family), ...)``: blocks of each family's stream in order (:data:`LAYOUT`).
        Enlarging a set appends a block, e.g. ``LAYOUT + (("valid", 6),)``: the tasks already in the sets keep
        their places, and each set's file is its old file followed by the new block.

    Returns:
      The two spec lists, block by block and within a block family by family in draw order; every spec's split
      is ``meta_test``.

    Raises:
      TaskSetError: a family gives too few specs within its limits in ``MAX_DRAWS`` draws.
    """
    registry = registry or default_registry()
    layout = tuple(layout)
    unknown = sorted({name for name, _ in layout} - set(SET_NAMES))
    if unknown or any(n < 0 for _, n in layout):
        raise TaskSetError(f"a layout takes blocks (set, count >= 0) of sets {list(SET_NAMES)}; got {list(layout)}")
    ids, configs = _excluded(suite_specs)
    held_out = set(DEFAULT_HELD_OUT_VARIANTS)
    need = sum(n for _, n in layout)
    streams = {}
    for name in families:
        family = registry.get(name)
        max_params, max_flops = limits_for(name, DEFAULT_LIMITS["max_params"], DEFAULT_LIMITS["max_flops"],
                                           FAMILY_LIMITS)
        kept = []
        for i in range(MAX_DRAWS):
            spec_seed = derive_seed("yardstick", seed, name, i)
            config = family.sample(SpecRNG(spec_seed))
            family.validate(config)
            spec = TaskSpec.create(name, family.version, spec_seed, config, split="meta_test")
            key = (name, spec.config_json)
            if (spec.task_id in ids or key in configs or family.variant(config) in held_out
                    or not within_limits(spec, max_params, max_flops, registry)):
                continue
            ids.add(spec.task_id)
            configs.add(key)
            kept.append(spec)
            if len(kept) == need:
                break
        if len(kept) < need:
            raise TaskSetError(f"family {name} gave {len(kept)} of {need} specs within max_params={max_params}, "
                               f"max_flops={max_flops} in {MAX_DRAWS} draws")
        streams[name] = kept
    out = {set_name: [] for set_name in SET_NAMES}
    start = 0
    for set_name, n in layout:  # block by block, so an appended block comes after everything before it
        for name in families:
            out[set_name] += streams[name][start:start + n]
        start += n
    return out


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_task_sets(sets: dict, out_dir=None, *, layout=LAYOUT) -> dict:
    """Write ``sets`` as ``<name>.jsonl`` spec files and their index ``sets.json``.

    Args:
      sets: ``{"valid": [TaskSpec], "test": [TaskSpec]}`` (:func:`sample_task_sets`).
      out_dir: the data folder (the package's by default).
      layout: the blocks the sets were sampled with, recorded in the index.

    Returns:
      The index: digests, sizes and the sampling rule's parameters.
    """
    out_dir = Path(out_dir or DATA_DIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    index = {"format": "lopt-yardstick-sets", "version": 1, "seed": SET_SEED, "families": list(FAMILIES),
             "layout": [list(block) for block in layout], "limits": DEFAULT_LIMITS, "family_limits": FAMILY_LIMITS,
             "excluded_variants": list(DEFAULT_HELD_OUT_VARIANTS), "sets": {}}
    for name in SET_NAMES:
        data = specs_to_jsonl(sets[name])
        atomic_write_bytes(out_dir / f"{name}.jsonl", data)
        per_family = {}
        for s in sets[name]:
            per_family[s.family] = per_family.get(s.family, 0) + 1
        index["sets"][name] = {"file": f"{name}.jsonl", "sha256": _digest(data), "tasks": len(sets[name]),
                               "per_family": per_family}
    atomic_write_bytes(out_dir / INDEX_FILE, (json.dumps(index, indent=1, sort_keys=True) + "\n").encode())
    return index


def read_index(data_dir=None) -> dict:
    """The ``sets.json`` index of ``data_dir`` (the package's by default); :class:`TaskSetError` when it is
    missing or unreadable."""
    path = Path(data_dir or DATA_DIR) / INDEX_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TaskSetError(f"{path}: the yardstick's task-set index cannot be read ({exc})") from None


def load_task_set(name: str, data_dir=None) -> list:
    """The specs of task set ``name`` (``valid`` or ``test``), checked against the digest in ``sets.json``.

    Raises:
      TaskSetError: ``name`` is not a set, or its file is missing or differs from its recorded digest.
    """
    if name not in SET_NAMES:
        raise TaskSetError(f"unknown task set {name!r}; choose one of {', '.join(SET_NAMES)}")
    data_dir = Path(data_dir or DATA_DIR)
    entry = read_index(data_dir)["sets"].get(name)
    if entry is None:
        raise TaskSetError(f"{data_dir / INDEX_FILE}: no task set {name!r} recorded")
    path = data_dir / entry["file"]
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TaskSetError(f"{path}: task set {name!r} cannot be read ({exc.strerror or exc})") from None
    if _digest(data) != entry["sha256"]:
        raise TaskSetError(f"{path}: task set {name!r} differs from its recorded sha256 {entry['sha256'][:16]}… "
                           f"in {INDEX_FILE} (the frozen sets must keep their bytes)")
    return read_specs(path)


def task_set_tasks(name: str, data_dir=None) -> list[EvalTask]:
    """Task set ``name`` as :class:`~lopt_trainer.evaluation.tasks.EvalTask` (group = the set's name)."""
    registry = default_registry()
    return [EvalTask(s, name, registry.get(s.family).variant(s.config)) for s in load_task_set(name, data_dir)]


def source_tasks(specs, max_tasks: int = 12, seed: int = 0) -> list[EvalTask]:
    """Up to ``max_tasks`` of ``specs`` spread evenly over their families (group ``source``).

    Args:
      specs: the candidate specs (e.g. the ``meta_test`` specs of a run's own task source).
      max_tasks: how many to keep at most.
      seed: orders each family's specs (sorted by task id first).

    Returns:
      The tasks, families taken in turn (sorted by name) until ``max_tasks`` or the specs run out.
    """
    registry = default_registry()
    by_family: dict = {}
    for s in sorted(specs, key=lambda s: s.task_id):
        by_family.setdefault(s.family, []).append(s)
    queues = []
    for family in sorted(by_family):
        pool = by_family[family]
        order = np.random.default_rng(derive_seed("source_tasks", seed, family)).permutation(len(pool))
        queues.append([pool[int(i)] for i in order])
    out = []
    while len(out) < max_tasks and any(queues):
        for q in queues:
            if q and len(out) < max_tasks:
                out.append(q.pop(0))
    return [EvalTask(s, "source", registry.get(s.family).variant(s.config)) for s in out]


def source_label(tasks) -> str:
    """A content address for a list of tasks (``tasks-`` + 16 hex digits of the sha256 of their specs)."""
    text = "\n".join(t.spec.to_json() for t in tasks)
    return "tasks-" + hashlib.sha256(text.encode()).hexdigest()[:16]
