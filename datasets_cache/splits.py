"""Deterministic split carving: the same indices on every machine and every NumPy version.

The permutation is ``argsort(splitmix64(i + SPLIT_SEED))`` over item indices ``i`` (a fixed integer hash; it
does not use NumPy's random generators, whose streams are not promised to stay the same across versions).
"""

from __future__ import annotations

import numpy as np

SPLITS = ("train", "inner_valid", "outer_valid", "test")
SPLIT_SEED = 0x7A5C_9E37  # fixed forever: changing it changes every split


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 (wrapping arithmetic)."""
    z = np.asarray(x, np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def permutation(n: int, salt: int = 0) -> np.ndarray:
    """A fixed pseudo-random permutation of ``range(n)`` (int64), different for each ``salt``."""
    keys = splitmix64(np.arange(n, dtype=np.uint64) + np.uint64(SPLIT_SEED + salt * 0x1_0000_0000))
    return np.argsort(keys, kind="stable").astype(np.int64)


def counts_from_fractions(n: int, test: float, inner_valid: float, outer_valid: float) -> dict[str, int]:
    """Split sizes for ``n`` items: each held-out split is ``round(fraction * n)``, train gets the rest."""
    c = {"test": round(test * n), "inner_valid": round(inner_valid * n), "outer_valid": round(outer_valid * n)}
    c["train"] = n - sum(c.values())
    if c["train"] < 0:
        raise ValueError(f"fractions leave no training data for n={n}")
    return c


def carve(n: int, counts: dict[str, int], salt: int = 0) -> dict[str, np.ndarray]:
    """Disjoint sorted index arrays covering ``range(n)``: the permutation is cut into inner_valid,
    outer_valid, test, train in that order with the given sizes (train may be omitted: it takes the rest)."""
    perm = permutation(n, salt)
    out, start = {}, 0
    for split in ("inner_valid", "outer_valid", "test"):
        k = counts.get(split, 0)
        out[split] = np.sort(perm[start:start + k])
        start += k
    out["train"] = np.sort(perm[start:])
    if start > n:
        raise ValueError(f"held-out sizes {counts} exceed n={n}")
    return {s: out[s] for s in SPLITS}


def image_split_indices(official_test: np.ndarray, fractions=(0.2, 0.1, 0.1)) -> dict[str, np.ndarray]:
    """Split indices for an image set.

    With an official test set (``official_test`` true somewhere): test = it; inner_valid and outer_valid are
    each ``min(5000, 10% of official train)`` items of official train by the fixed permutation; train = rest.
    Without one: test / inner_valid / outer_valid take ``fractions`` (20% / 10% / 10%), train the rest.
    """
    official_test = np.asarray(official_test, bool)
    n = official_test.size
    if official_test.any():
        train_pool = np.flatnonzero(~official_test)
        k = min(5000, round(0.1 * train_pool.size))
        sub = carve(train_pool.size, {"inner_valid": k, "outer_valid": k})
        out = {s: train_pool[sub[s]] for s in ("train", "inner_valid", "outer_valid")}
        out["test"] = np.flatnonzero(official_test)
        return {s: out[s] for s in SPLITS}
    return carve(n, counts_from_fractions(n, *fractions))
