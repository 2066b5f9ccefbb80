"""The shipped pretrained θ: loads, has its recipe, and trains held-out tasks better than a random θ."""

import jax
import numpy as np

import lopt_trainer
from lopt_trainer.inner.loop import train
from taskgen.api import build_task, default_suite_path
from taskgen.specfile import read_specs


def _final_loss(task, theta, steps=300):
    res = train(task, lopt_trainer.optax_lopt(theta), steps, seed=0)
    return float(np.nanmean(res.losses["train"][-3:]))


def test_pretrained_theta_loads_with_its_recipe():
    theta = lopt_trainer.pretrained()
    shapes = {k: v.shape for k, v in jax.tree_util.tree_leaves_with_path(theta)}
    assert shapes and all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(theta))
    recipe = lopt_trainer.pretrained_recipe()
    assert recipe["steps_run"] > 0 and recipe["config"]["filters"]["split"] == ["meta_train"]


def test_pretrained_beats_random_theta_on_held_out_tasks():
    specs = [s for s in read_specs(default_suite_path()) if s.split == "meta_test"]
    held_out = [next(s for s in specs if s.family == f) for f in ("quadratic", "twod", "mlp")]
    random_theta = lopt_trainer.lopt_init(jax.random.PRNGKey(0))
    trained = lopt_trainer.pretrained()
    wins = 0
    for spec in held_out:
        task = build_task(spec)
        ours, rand = _final_loss(task, trained), _final_loss(task, random_theta)
        print(spec.task_id, "pretrained", ours, "random", rand)
        wins += ours < rand
    assert wins >= 2
