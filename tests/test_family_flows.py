"""Tests of ``maf`` and ``nvp`` (families/flows.py): the shared image-family battery on 20 sampled specs each,
plus the flow math (normalised densities, change of variables against ``jax.jacfwd``, autoregressive masks) and
seeded permutations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from families import flows
from families.base import ConfigError
from families.flows import MAFFamily, NVPFamily
from taskgen.spec import TaskSpec
from tests import family_checks as fc
from tests.image_family_checks import make_tests

_maf_tests = make_tests(MAFFamily())
_nvp_tests = make_tests(NVPFamily())
globals().update({f"{k}__maf": v for k, v in _maf_tests.items()})
globals().update({f"{k}__nvp": v for k, v in _nvp_tests.items()})


def _random_params(flow, dim, n_perms, seed, scale=0.5):
    """Flow params with every leaf random (the default init zeroes the output layers: an identity flow)."""
    params = flow.init(jax.random.PRNGKey(0), jnp.zeros((1, dim)), jnp.zeros((n_perms, dim), jnp.int32))["params"]
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return jax.tree_util.tree_unflatten(tree, [scale * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])


@pytest.mark.parametrize("kind", ["maf", "nvp"])
def test_two_dimensional_density_integrates_to_one(kind):
    flow = flows.flow_module(kind, 2, 3, (16,), "tanh", {"name": "glorot_normal"})
    perms = jnp.asarray([[1, 0], [0, 1]], jnp.int32)
    params = _random_params(flow, 2, 2, seed=4, scale=0.3)  # wider weights put mass outside the grid
    grid = jnp.linspace(-12.0, 12.0, 1201)
    xx, yy = jnp.meshgrid(grid, grid)
    pts = jnp.stack([xx.ravel(), yy.ravel()], -1)
    density = jnp.exp(flow.apply({"params": params}, pts, perms))
    cell = float(grid[1] - grid[0]) ** 2
    assert abs(float(jnp.sum(density)) * cell - 1.0) < 5e-3


@pytest.mark.parametrize("kind", ["maf", "nvp"])
def test_log_det_matches_jacobian(kind):
    dim = 6
    flow = flows.flow_module(kind, dim, 3, (12, 10), "elu", {"name": "glorot_normal"})
    perms = jnp.stack([flows.permutation(dim, "t", 0), flows.permutation(dim, "t", 1)])
    params = _random_params(flow, dim, 2, seed=9)
    x = jax.random.uniform(jax.random.PRNGKey(5), (dim,))

    def z_of(v):
        return flow.apply({"params": params}, v[None], perms, method=flows.Flow.transform)[0][0]

    _, log_det = flow.apply({"params": params}, x[None], perms, method=flows.Flow.transform)
    _, expected = jnp.linalg.slogdet(jax.jacfwd(z_of)(x))
    np.testing.assert_allclose(float(log_det[0]), float(expected), rtol=1e-4, atol=1e-4)


def test_made_is_autoregressive():
    """Without permutations one MAF layer has a lower-triangular Jacobian (z_i depends on x_≤i only)."""
    dim = 7
    flow = flows.flow_module("maf", dim, 1, (5, 9), "relu", {"name": "he_uniform"})
    params = _random_params(flow, dim, 0, seed=1)
    no_perms = jnp.zeros((0, dim), jnp.int32)
    x = jax.random.uniform(jax.random.PRNGKey(2), (dim,))
    jac = jax.jacfwd(lambda v: flow.apply({"params": params}, v[None], no_perms,
                                          method=flows.Flow.transform)[0][0])(x)
    assert np.allclose(np.triu(np.asarray(jac), 1), 0.0)
    assert np.all(np.abs(np.diag(np.asarray(jac))) > 0)
    masks = flows.made_masks(dim, (5, 9))
    assert [m.shape for m in masks] == [(7, 5), (5, 9), (9, 14)]


def test_permutations_are_seeded_valid_and_differ_across_seeds():
    fam = MAFFamily()
    spec = fc.sample_specs(fam, 8)
    spec = next(s for s in spec if s.config["num_bijectors"] >= 3)
    a = fam.permutations(spec)
    b = fam.permutations(TaskSpec.create(spec.family, spec.family_version, spec.seed, spec.config))
    dim = spec.config["data"]["image_size"] ** 2
    assert a.shape == (spec.config["num_bijectors"] - 1, dim) and a.dtype == np.int32
    assert a.tobytes() == b.tobytes()
    for row in a:
        assert sorted(row.tolist()) == list(range(dim))
    assert not np.array_equal(a[0], a[1])
    other = fam.permutations(TaskSpec.create(spec.family, spec.family_version, spec.seed + 1, spec.config))
    assert not np.array_equal(a, other)
    # Golden value: the permutation stream must never change (frozen specs keep their meaning).
    assert flows.permutation(8, "maf", 0, 0).tolist() == GOLDEN_PERM


GOLDEN_PERM = [0, 2, 6, 1, 7, 3, 4, 5]


def test_tasks_of_different_seeds_share_compiled_functions_but_not_permutations():
    fam = NVPFamily()
    spec = next(s for s in fc.sample_specs(fam, 8) if s.config["num_bijectors"] >= 2)
    t1 = fam.build(spec)
    t2 = fam.build(TaskSpec.create(spec.family, spec.family_version, spec.seed + 7, spec.config))
    assert t1.static_key == t2.static_key and t1.loss is t2.loss
    assert not np.array_equal(np.asarray(t1.splits["train"]["perms"]), np.asarray(t2.splits["train"]["perms"]))
    b = t1.batch("train", jax.random.PRNGKey(0))
    assert b["x"].shape == (t1.batch_size, spec.config["data"]["image_size"] ** 2)
    assert float(b["x"].min()) >= 0.0 and float(b["x"].max()) <= 1.0


def test_center_data_is_refused_and_identity_init_gives_the_base_density():
    fam = MAFFamily()
    spec = fc.sample_specs(fam, 1)[0]
    cfg = dict(spec.config, data=dict(spec.config["data"], center_data=True))
    with pytest.raises(ConfigError) as err:
        fam.validate(cfg)
    assert err.value.field == "data.center_data"
    task = fam.build(spec)
    params = task.init(task.init_key())
    batch = task.batch("train", jax.random.PRNGKey(0))
    key = jax.random.PRNGKey(1)
    x = batch["x"] + flows.NOISE_STD * jax.random.normal(key, batch["x"].shape)
    base = 0.5 * jnp.sum(x ** 2, -1) + 0.5 * x.shape[-1] * np.log(2 * np.pi)
    np.testing.assert_allclose(float(task.loss(params, batch, key)), float(jnp.mean(base)), rtol=1e-5)


def test_normalizer_range():
    norm = flows.flow_normalizer(64)
    assert float(norm(64 * flows.NOISE_ENTROPY_PER_DIM)) == 0.0
    assert 8.0 < float(norm(64 * 1.0)) < 9.0
    assert float(norm(1e9)) == 10.0
