"""The reliability study's helpers: Spearman's correlation, the halves of a stratified set, and committed runs
of a set that has since grown reused (only the new tasks run)."""

import numpy as np
import pytest

from lopt_trainer.evaluation import yardstick
from lopt_trainer.evaluation.task_sets import task_set_tasks
from research import yardstick_reliability as rel
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


def _runs(tasks, value):
    n = len(tasks)
    return yardstick.ThetaRuns("valid", "d", tuple(t.task_id for t in tasks), tuple(t.spec.family for t in tasks),
                               np.full((n, 3), value), np.full((n, 3), value), np.zeros((n, 3), bool), 1.0, 2.0)


def test_a_committed_prefix_is_joined_with_the_new_tasks_only(monkeypatch):
    tasks = task_set_tasks("valid")
    prefix = _runs(tasks[:48], 0.5)
    asked = []

    def fake_run_theta(theta, set_name, *, cache=None, tasks=None, **kw):
        asked.append([t.task_id for t in tasks])
        return _runs(tasks, 0.25)

    monkeypatch.setattr(rel.yardstick, "run_theta", fake_run_theta)
    runs = rel.run_rest(None, "valid", None, prefix)
    assert asked == [[t.task_id for t in tasks[48:]]]  # the 72 new tasks, nothing run twice
    assert runs.task_ids == tuple(t.task_id for t in tasks)
    assert runs.final.shape == (120, 3) and (runs.final[:48] == 0.5).all() and (runs.final[48:] == 0.25).all()
    assert runs.wall_s == 2.0  # the time of the runs made now
