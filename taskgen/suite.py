"""Suite generation: a deterministic list of specs over families, with a documented meta-train/meta-test split.

Spec ``i`` of family ``f`` in a suite with seed ``S`` gets the seed ``derive_seed("suite", S, f, i)`` (or, when an
earlier spec of the family has that seed already, the first of ``derive_seed("suite", S, f, i, k)``, k = 1, 2, …,
that none has: 31-bit seeds collide in suites of 100k specs) and the config ``f.sample(SpecRNG(seed))``. A spec is ``meta_test`` when its family variant is held out, or when the first
8 hex digits of its content hash, read as a fraction of 2³², fall below ``holdout_fraction`` (default 0.2).
Everything else is ``meta_train``. The same arguments give the same bytes on every machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from families.sampling import SpecRNG, derive_seed
from taskgen.registry import BUILTIN_FAMILIES, Registry, default_registry
from taskgen.spec import TaskSpec

DEFAULT_PER_FAMILY = 500
DEFAULT_SEED = 0
DEFAULT_HOLDOUT_FRACTION = 0.2
DEFAULT_HELD_OUT_VARIANTS = ("twod/beale", "quadratic/logspace_eigen", "char_lm/gru", "conv_pooling/squared_mean")
"""Whole family variants that never appear in ``meta_train`` of the default suite ("unseen" task kinds)."""


def holdout_score(spec: TaskSpec) -> float:
    """The spec's position in [0, 1) used for the hash-based meta-test split."""
    return int(spec.task_id[-12:-4], 16) / 2**32  # the first 8 of the id's 12 hex digits (the content hash)


def assign_split(spec: TaskSpec, variant: str, holdout_fraction: float, held_out_variants: Iterable[str]) -> str:
    """``meta_test`` if ``variant`` is held out or the hash score is below ``holdout_fraction``, else ``meta_train``."""
    if variant in set(held_out_variants) or holdout_score(spec) < holdout_fraction:
        return "meta_test"
    return "meta_train"


def generate_suite(families: Sequence[str] | None = None, per_family: int = DEFAULT_PER_FAMILY,
                   seed: int = DEFAULT_SEED, holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION,
                   held_out_variants: Iterable[str] = DEFAULT_HELD_OUT_VARIANTS,
                   registry: Registry | None = None, progress=None) -> list[TaskSpec]:
    """Sample ``per_family`` specs of each family (the 12 built-in families when ``families`` is None, so the
    default suite does not change when plugins are installed or families registered).

    Returns the specs in family order, then index order. ``progress`` (optional) is called with the number of specs
    done after each family.
    """
    registry = registry or default_registry()
    names = list(families) if families else list(BUILTIN_FAMILIES)
    if per_family < 0:
        raise ValueError(f"per_family must be >= 0, got {per_family}")
    if not 0.0 <= holdout_fraction <= 1.0:
        raise ValueError(f"holdout_fraction must lie in [0, 1], got {holdout_fraction}")
    held_out = tuple(held_out_variants)
    specs = []
    for name in names:
        family = registry.get(name)
        used: set[int] = set()
        for i in range(per_family):
            spec_seed = derive_seed("suite", seed, name, i)
            retry = 0
            while spec_seed in used:  # 31-bit seeds collide in large suites: draw again, deterministically
                retry += 1
                spec_seed = derive_seed("suite", seed, name, i, retry)
            used.add(spec_seed)
            config = family.sample(SpecRNG(spec_seed))
            family.validate(config)
            spec = TaskSpec.create(name, family.version, spec_seed, config)
            split = assign_split(spec, family.variant(spec.config), holdout_fraction, held_out)
            specs.append(spec if split == "meta_train" else spec.with_split(split))
        if progress is not None:
            progress(len(specs))
    return specs
