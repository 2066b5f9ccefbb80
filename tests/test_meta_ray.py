"""Ray backend on a local cluster: 2 workers give the single-process meta-gradients; a dead worker is replaced."""

import jax
import numpy as np
import pytest

ray = pytest.importorskip("ray")

from lopt_trainer.meta import MetaTrainConfig  # noqa: E402
from lopt_trainer.meta.outer import build_outer_optimizer, train_step  # noqa: E402
from lopt_trainer.meta.state import initial_state  # noqa: E402
from lopt_trainer.meta.work import make_context  # noqa: E402
from tests.meta_helpers import small_quadratic_specs  # noqa: E402


def test_ray_local_cluster_matches_single_process():
    from lopt_trainer.meta.ray_pool import RayGradientPool

    specs = small_quadratic_specs(8)
    config = MetaTrainConfig(lopt="tests.meta_helpers:tiny_lopt", truncation=10, tasks_per_group=4, num_groups=2,
                             horizon_min=20, horizon_max=60, valid_every=5, outer_lr=0.05, sigma=0.05,
                             compilation_cache="", workers=2)
    s = config.split()
    outer = build_outer_optimizer(s.outer)
    local_ctx = make_context(s.worker, specs)
    local = initial_state(local_ctx, s.init, outer)
    remote = initial_state(make_context(s.worker, specs), s.init, outer)
    backend = RayGradientPool(s.worker, specs, num_workers=2)
    try:
        for _ in range(3):
            rec_local = train_step(local_ctx, s.plan, outer, local)
            rec_ray = train_step(local_ctx, s.plan, outer, remote, backend)
            assert rec_ray["estimators_ok"] == 2
            np.testing.assert_allclose(rec_ray["meta_loss"], rec_local["meta_loss"], rtol=1e-5)
            np.testing.assert_allclose(rec_ray["grad_norm"], rec_local["grad_norm"], rtol=1e-4)
        for a, b in zip(jax.tree_util.tree_leaves(local.theta), jax.tree_util.tree_leaves(remote.theta)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
        backend.kill_worker(0)
        rec = train_step(local_ctx, s.plan, outer, remote, backend)
        assert rec["estimators_ok"] == 1 and backend.replaced == 1
        rec = train_step(local_ctx, s.plan, outer, remote, backend)
        assert rec["estimators_ok"] == 2
    finally:
        backend.close()
