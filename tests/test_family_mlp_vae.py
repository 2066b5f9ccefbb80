"""Tests of the ``mlp_vae`` family (families/mlp_vae.py): the shared image-family battery on 20 sampled specs."""

from families.mlp_vae import MLPVAEFamily
from tests.image_family_checks import make_tests

globals().update(make_tests(MLPVAEFamily()))


import math  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from families.mlp import hashable_init  # noqa: E402
from families.mlp_vae import VAE  # noqa: E402


def test_vae_objective_matches_hand_computation():
    """Unit test of the model math on synthetic inputs (not a dataset): nll + KL of one example."""
    model = VAE(encoder=(3,), decoder=(4,), out_dim=5, activation="tanh",
                init_config=hashable_init({"name": "glorot_normal"}))
    x = jnp.linspace(0.1, 0.9, 5)[None]
    eps = jnp.array([[0.3, -0.2, 0.5]])
    params = model.init(jax.random.PRNGKey(0), x, eps)["params"]
    got = float(model.apply({"params": params}, x, eps)[0])
    p = jax.tree_util.tree_map(np.asarray, params)
    h = x @ p["enc"]["dense_0"]["kernel"] + p["enc"]["dense_0"]["bias"]
    mu_z, ls_z = h[:, :3], np.clip(h[:, 3:], -10, 10)
    z = mu_z + np.exp(ls_z) * eps
    d = np.tanh(z @ p["dec"]["dense_0"]["kernel"] + p["dec"]["dense_0"]["bias"])
    o = d @ p["dec"]["dense_1"]["kernel"] + p["dec"]["dense_1"]["bias"]
    mu_x, ls_x = o[:, :5], np.clip(o[:, 5:], -10, 10)
    nll = np.sum(0.5 * ((x - mu_x) / np.exp(ls_x)) ** 2 + ls_x + 0.5 * math.log(2 * math.pi))
    kl = np.sum(0.5 * (mu_z ** 2 + np.exp(2 * ls_z) - 1) - ls_z)
    assert got == np.float32(nll + kl) or abs(got - (nll + kl)) < 1e-4 * abs(nll + kl)


def test_vae_loss_is_per_example_and_normalizer_per_pixel():
    fam = MLPVAEFamily()
    from tests.family_checks import sample_specs

    task = fam.build(sample_specs(fam, 1)[0])
    dim = int(np.prod(fam.describe(task.spec.config)["input_shape"]))
    loss = float(task.loss(task.init(task.init_key()), task.batch("train", jax.random.PRNGKey(0)),
                           jax.random.PRNGKey(1)))
    assert float(task.normalizer(loss)) == min(max(loss / dim, 0.0), 10.0) or \
        abs(float(task.normalizer(loss)) - min(max(loss / dim, 0.0), 10.0)) < 1e-4
