"""Evaluation end to end on two tiny tasks: determinism (same seed -> same table bytes) and resume."""

import jax
import pytest

from lopt_trainer.optimizer import hierarchical
from lopt_trainer.evaluation.records import unit_path
from lopt_trainer.evaluation.runner import RESULTS_FILE, EvaluationExists, run_evaluation
from lopt_trainer.evaluation.backends import LocalBackend
from lopt_trainer.evaluation.scoring import read_table
from tests.test_eval_metrics import SETTINGS, synthetic_tasks


class CountingBackend(LocalBackend):
    """In-process backend that records which units it ran."""

    def __init__(self):
        self.units = []

    def run(self, items, tasks=None):
        for out in super().run(items, tasks):
            self.units.append((out[0].task_id, out[0].optimizer, out[0].trials, out[0].seeds))
            yield out


@pytest.fixture(scope="module")
def theta():
    return hierarchical.init(jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, theta):
    out = tmp_path_factory.mktemp("eval_a")
    backend = CountingBackend()
    # a module fixture is set up before conftest's per-test private cache: give it its own
    cache = tmp_path_factory.mktemp("cache") / "baselines.arrow"
    summary = run_evaluation(theta, synthetic_tasks(), out, SETTINGS, progress=False, backend=backend,
                             baselines_from=cache)
    return out, summary, backend


def test_outputs(first_run):
    out, summary, backend = first_run
    assert len(backend.units) == 2 * 4  # 2 tasks x (lopt + 3 baselines)
    for name in (RESULTS_FILE, "eval_summary.json", "eval.json", "boxplot_final.png", "boxplot_auc.png"):
        assert (out / name).exists(), name
    groups = {(r["optimizer"], r["group"]) for r in summary["rows"]}
    assert ("global_adamlr", "seen") in groups and ("per_task_opt_list@2", "unseen") in groups
    t = read_table(out / RESULTS_FILE)
    assert t.num_rows == 2 * 9 * 2  # tasks x optimizer rows x seeds


def test_same_seed_same_bytes(first_run, tmp_path, theta):
    out, _, _ = first_run
    run_evaluation(theta, synthetic_tasks(), tmp_path, SETTINGS, progress=False)
    assert (tmp_path / RESULTS_FILE).read_bytes() == (out / RESULTS_FILE).read_bytes()


def test_resume_skips_finished_runs(first_run, tmp_path, theta):
    import shutil

    src, _, _ = first_run
    out = tmp_path / "ev"
    shutil.copytree(src, out)
    with pytest.raises(EvaluationExists):
        run_evaluation(theta, synthetic_tasks(), out, SETTINGS, progress=False)
    backend = CountingBackend()
    run_evaluation(theta, synthetic_tasks(), out, SETTINGS, progress=False, resume=True, backend=backend)
    assert backend.units == []
    assert (out / RESULTS_FILE).read_bytes() == (src / RESULTS_FILE).read_bytes()
    # an interrupted evaluation: one unit file missing, another with a record missing
    tasks = synthetic_tasks()
    unit_path(out, tasks[1].task_id, "adam8p").unlink()
    path = unit_path(out, tasks[0].task_id, "opt_list")
    import json

    data = json.loads(path.read_text())
    data["records"] = [r for r in data["records"] if not (r["trial"] == 1 and r["seed"] == 1)]
    path.write_text(json.dumps(data))
    backend = CountingBackend()
    run_evaluation(theta, tasks, out, SETTINGS, progress=False, resume=True, backend=backend)
    assert sorted(backend.units) == sorted([(tasks[1].task_id, "adam8p", (0, 1), (0, 1)),
                                            (tasks[0].task_id, "opt_list", (1,), (1,))])
    assert (out / RESULTS_FILE).read_bytes() == (src / RESULTS_FILE).read_bytes()


def test_changed_theta_reruns_only_lopt(first_run, tmp_path, theta):
    import shutil

    src, _, _ = first_run
    out = tmp_path / "ev"
    shutil.copytree(src, out)
    other = jax.tree_util.tree_map(lambda x: x * 1.01, theta)
    backend = CountingBackend()
    run_evaluation(other, synthetic_tasks(), out, SETTINGS, progress=False, resume=True, backend=backend)
    assert sorted(u[1] for u in backend.units) == ["lopt", "lopt"]


@pytest.mark.slow
def test_ray_backend_matches_local(first_run, tmp_path, theta):
    src, _, _ = first_run
    run_evaluation(theta, synthetic_tasks(), tmp_path, SETTINGS, progress=False, workers=2)
    a = read_table(src / RESULTS_FILE).to_pydict()
    b = read_table(tmp_path / RESULTS_FILE).to_pydict()
    assert a["optimizer"] == b["optimizer"] and a["task_id"] == b["task_id"]
    import numpy as np

    assert np.allclose(np.asarray(a["final"]), np.asarray(b["final"]), rtol=1e-5, atol=1e-6)
