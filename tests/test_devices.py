"""The toolkit on whatever device JAX runs on: the learned optimizer's step and a meta-gradient on the default
device agree with the CPU's within float tolerance, and meta-training runs there. Under ``make test`` the default device is the CPU (the tests
force it); ``benchmarks/device_check.sh`` runs this file on an accelerator without forcing it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lopt_trainer.optimizer.optax_api import optax_lopt
from lopt_trainer.theta.load import load_theta


def _params(key):
    k1, k2, k3 = jax.random.split(key, 3)
    return {"w1": jax.random.normal(k1, (32, 16)) * 0.2, "b1": jnp.zeros(16),
            "w2": jax.random.normal(k2, (16, 4)) * 0.2, "x": jax.random.normal(k3, (64, 32))}


def _loss(p):
    h = jnp.tanh(p["x"] @ p["w1"] + p["b1"])
    return jnp.mean((h @ p["w2"] - 1.0) ** 2)


def _train(theta, device, steps: int = 20):
    tx = optax_lopt(jax.device_put(theta, device))
    params = jax.device_put(_params(jax.random.PRNGKey(0)), device)
    state = tx.init(params)

    @jax.jit
    def step(p, s):
        loss, g = jax.value_and_grad(_loss)(p)
        u, s = tx.update(g, s, p, value=loss)
        return jax.tree_util.tree_map(lambda a, b: a + b, p, u), s, loss

    losses = []
    for _ in range(steps):
        params, state, loss = step(params, state)
        losses.append(float(loss))
    return np.asarray(losses)


def test_the_default_device_is_reported():
    device = jax.devices()[0]
    assert device.platform in ("cpu", "gpu", "cuda", "rocm", "tpu")
    print(f"default device: {device.platform} {device.device_kind} ×{jax.device_count()}")


@pytest.mark.parametrize("theta_name", ["handset", "pretrained"])
def test_training_with_theta_on_the_default_device_matches_the_cpu(theta_name):
    theta = load_theta(theta_name)
    on_default = _train(theta, jax.devices()[0])
    on_cpu = _train(theta, jax.devices("cpu")[0])
    assert on_default[-1] < on_default[0]  # it trains
    np.testing.assert_allclose(on_default, on_cpu, rtol=2e-3, atol=1e-5)


def test_meta_training_runs_on_the_default_device_and_keeps_theta_there():
    import tempfile

    from lopt_trainer.meta.config import MetaTrainConfig
    from lopt_trainer.meta.trainer import meta_train
    from tests.meta_helpers import small_quadratic_specs

    cfg = MetaTrainConfig(steps=2, num_groups=1, tasks_per_group=2, truncation=5, horizon_min=10, horizon_max=20,
                          eval_every=0, checkpoint_every=0, compilation_cache="", prefetch_steps=0)
    with tempfile.TemporaryDirectory() as a:
        result = meta_train(cfg, a, specs=small_quadratic_specs(4), progress=False)
    leaves = jax.tree_util.tree_leaves(result.theta)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in leaves)
    assert {x.devices().pop().platform for x in leaves} == {jax.devices()[0].platform}
