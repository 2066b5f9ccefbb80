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
    with pytest.raises(ValueError, match="loss_difference='sign' applies to ES-type estimators"):
        EstimatorSettings(kind="hybrid", difference="sign")


@pytest.mark.parametrize("estimator,outer", [("pes", "adam"), ("backprop", "adam"), ("pes", "lopt:handset")])
def test_only_the_named_parts_change(tmp_path, estimator, outer):
    """Whatever the estimator, and even with a learned outer optimizer (which moves a parameter whose gradient is
    zero), the parts not named stay exactly as the run started them."""
    start = _run(tmp_path, "start", estimator=estimator, outer_lr=0.0)  # θ as the run starts it
    trained = _run(tmp_path, "mlp", estimator=estimator, train_parts=["mlp"], outer_opt=outer)
    assert _max_change(start["mlp"], trained["mlp"]) > 1e-5
    for part in start:
        if part != "mlp":
            assert _max_change(start[part], trained[part]) == 0.0, part


def test_an_unknown_part_is_refused_before_the_run_folder_is_touched(tmp_path):
    with pytest.raises(ValueError, match=r"train_parts \['LSTM'\] are not parts of θ"):
        _run(tmp_path, "bad", train_parts=["LSTM"])
    assert not os.path.exists(tmp_path / "bad")
    kept = tmp_path / "kept"  # a folder of another run, asked to be overwritten: nothing of it is removed
    _run(tmp_path, "kept")
    before = sorted(os.listdir(kept))
    cfg = MetaTrainConfig(steps=2, num_groups=1, tasks_per_group=2, truncation=5, horizon_min=10, horizon_max=20,
                          eval_every=0, checkpoint_every=0, compilation_cache="", prefetch_steps=0,
                          train_parts=["LSTM"])
    with pytest.raises(ValueError, match="are not parts of θ"):
        meta_train(cfg, kept, specs=small_quadratic_specs(4), progress=False, overwrite=True)
    assert sorted(os.listdir(kept)) == before


def test_a_best_theta_scored_on_other_panel_tasks_is_kept_aside(tmp_path, capsys):
    """A resumed run whose panel tasks changed (the frozen sets grew) keeps the old best θ under another name
    instead of letting the next panel overwrite it."""
    import json

    from lopt_trainer.evaluation.panel import PanelSettings
    from lopt_trainer.meta.run_panel import Panel
    from lopt_trainer.optimizer.protocol import hierarchical_lopt

    (tmp_path / "best.json").write_text(json.dumps({"step": 300, "task_scores": {"an-old-task": 0.1}}))
    (tmp_path / "best_theta.npz").write_bytes(b"the old best")
    panel = Panel(PanelSettings(on="valid"), tmp_path, hierarchical_lopt(), resumed=True)
    assert panel.best is None and not (tmp_path / "best.json").exists()
    assert json.loads((tmp_path / "best_previous_panel.json").read_text())["step"] == 300
    assert (tmp_path / "best_previous_panel_theta.npz").read_bytes() == b"the old best"
    assert "kept as best_previous_panel.json" in capsys.readouterr().err
