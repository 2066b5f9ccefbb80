"""The reliability study's helpers: Spearman's correlation and the halves of a stratified set."""

import numpy as np
import pytest

from research.yardstick_reliability import halves, spearman


def test_spearman_known_values():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)  # 1 − 6·2 / (4·15)
    assert spearman([1, 1, 2], [1, 1, 2]) == pytest.approx(1.0)  # ties share their average rank


def test_halves_split_each_family_in_two():
    fam = ["a"] * 10 + ["b"] * 10 + ["c"] * 4
    first, second = halves(fam)
    assert (first ^ second).all()
    for f, n in (("a", 5), ("b", 5), ("c", 2)):
        idx = np.asarray(fam) == f
        assert first[idx].sum() == n and first[idx][:n].all()  # the first tasks of each family, in set order
