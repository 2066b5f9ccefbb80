"""Meta-training only some parts of θ (``train_parts``): the rest is neither perturbed nor changed, for ES/PES and
for backprop, and a part θ does not have is refused before the run folder gets a file."""

import os

import jax
import numpy as np
import pytest

from lopt_trainer.meta.config import MetaTrainConfig
from lopt_trainer.meta.estimators import EstimatorSettings, part_mask
from lopt_trainer.meta.trainer import meta_train
from lopt_trainer.theta.load import load_theta
from tests.meta_helpers import small_quadratic_specs


def _run(tmp_path, name, **kw):
    cfg = MetaTrainConfig(steps=2, num_groups=1, tasks_per_group=2, truncation=5, horizon_min=10, horizon_max=20,
                          eval_every=0, checkpoint_every=0, compilation_cache="", prefetch_steps=0, **kw)
    return meta_train(cfg, tmp_path / name, specs=small_quadratic_specs(4), progress=False).theta


def _max_change(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def test_the_mask_covers_exactly_the_named_parts():
    theta = load_theta("handset")
    mask = part_mask(theta, ("mlp", "to_mlp"))
    sizes = {k: sum(int(np.size(x)) for x in jax.tree_util.tree_leaves(v)) for k, v in theta.items()}
    assert mask.shape == (sum(sizes.values()),) and set(np.unique(mask)) == {0.0, 1.0}
    assert int(mask.sum()) == sizes["mlp"] + sizes["to_mlp"]
    assert part_mask(theta, None) is None
    with pytest.raises(ValueError, match=r"train_parts \['mpl'\] are not parts of θ; θ's parts: \['initial_from"):
        part_mask(theta, ("mpl",))
    with pytest.raises(ValueError, match="parts must be a non-empty list"):
        EstimatorSettings(parts=())


@pytest.mark.parametrize("estimator", ["pes", "backprop"])
def test_only_the_named_parts_change(tmp_path, estimator):
    start = _run(tmp_path, "start", estimator=estimator, outer_lr=0.0)  # θ as the run starts it
    trained = _run(tmp_path, "mlp", estimator=estimator, train_parts=["mlp"])
    assert _max_change(start["mlp"], trained["mlp"]) > 1e-5
    for part in start:
        if part != "mlp":
            assert _max_change(start[part], trained[part]) == 0.0, part


def test_an_unknown_part_is_refused_before_any_file_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"train_parts \['LSTM'\] are not parts of θ"):
        _run(tmp_path, "bad", train_parts=["LSTM"])
    assert not os.path.exists(tmp_path / "bad") or not any(
        f for f in os.listdir(tmp_path / "bad") if not f.startswith("."))
