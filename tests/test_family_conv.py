"""Tests of ``conv_pooling`` and ``conv_fc`` (families/conv.py): the shared image-family battery on 20 sampled
specs each, plus spatial-size geometry, the VALID-padding check, pooling kinds and the sampler's cost cap."""

import copy
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from families import common, conv
from families.base import ConfigError
from families.conv import ConvFCFamily, ConvPoolingFamily
from families.sampling import SpecRNG
from tests.image_family_checks import make_tests

_pool_tests = make_tests(ConvPoolingFamily())
_fc_tests = make_tests(ConvFCFamily())
globals().update({f"{k}__conv_pooling": v for k, v in _pool_tests.items()})
globals().update({f"{k}__conv_fc": v for k, v in _fc_tests.items()})


def _config(size=8, layers=(("SAME", 8),), pattern="all_2", **extra):
    cfg = {
        "data": {"dataset": "digits" if size == 8 else "mnist", "image_size": size, "batch_size": 8,
                 "center_data": False},
        "conv": [{"channels": c, "padding": p} for p, c in layers],
        "stride_pattern": pattern, "use_bias": True, "activation": "relu", "init": {"name": "he_normal"},
        "pool": "mean",
    }
    cfg.update(extra)
    return cfg


def test_spatial_sizes_match_flax_for_every_geometry():
    """The analytic spatial sizes (used by cost and validate) equal the real conv stack's output shape."""
    for size, pattern, pads in itertools.product(conv.IMAGE_SIZES, conv.STRIDE_PATTERNS,
                                                 itertools.product(conv.PADDINGS, repeat=3)):
        cfg = _config(size, [(p, 8) for p in pads], pattern)
        sizes = conv.spatial_sizes(cfg)
        if any(p == "VALID" and n < 3 for p, n in zip(pads, sizes)):
            continue
        stack = conv._stack(cfg)
        y, _ = stack.init_with_output(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 1)))
        assert y.shape == (1, sizes[-1], sizes[-1], 8), (size, pattern, pads, sizes)


def test_valid_padding_on_a_too_small_input_is_refused_with_its_field():
    cfg = _config(8, [("VALID", 8)] * 5, "all_2")  # 8 -> 3 -> 1 -> VALID on 1x1
    with pytest.raises(ConfigError) as err:
        ConvPoolingFamily().validate(cfg)
    assert err.value.field == "conv[2].padding" and "SAME" in str(err.value)
    cfg["conv"][2]["padding"] = "SAME"
    cfg["conv"][3]["padding"] = "SAME"
    cfg["conv"][4]["padding"] = "SAME"
    ConvPoolingFamily().validate(cfg)


def test_stride_patterns():
    assert conv.strides_for("all_2", 3) == [2, 2, 2]
    assert conv.strides_for("2_then_1", 3) == [2, 1, 1]
    assert conv.strides_for("1_then_2", 3) == [1, 2, 2]


def test_pool_kinds_differ_and_squared_mean_is_mean_of_squares():
    fam = ConvPoolingFamily()
    x = jax.random.uniform(jax.random.PRNGKey(0), (4, 8, 8, 1))
    outs = {}
    for pool in conv.POOLS:
        key = fam.static_key(_config(pool=pool))
        init, _, _, _ = conv._functions(key)
        params = init(jax.random.PRNGKey(1))
        net = conv.ConvPoolNet(conv._stack(_config()), pool, 10, common.initializer_fn({"name": "he_normal"}))
        feats = conv._stack(_config()).apply({"params": params["stack"]}, x)
        outs[pool] = np.asarray(net.apply({"params": params}, x))
        head = params["Dense_0"]
        pooled = {"mean": feats.mean((1, 2)), "max": feats.max((1, 2)), "squared_mean": (feats ** 2).mean((1, 2))}
        np.testing.assert_allclose(outs[pool], pooled[pool] @ head["kernel"] + head["bias"], rtol=1e-5, atol=1e-5)
    assert not np.allclose(outs["mean"], outs["max"])
    assert not np.allclose(outs["mean"], outs["squared_mean"])


def test_sampler_respects_the_cost_cap_and_only_valid_geometry():
    for fam in (ConvPoolingFamily(), ConvFCFamily()):
        for seed in range(200):
            cfg = fam.sample(SpecRNG(seed))
            fam.validate(cfg)
            assert fam.cost(cfg).flops_per_step <= conv.MAX_SAMPLED_FLOPS, (fam.name, seed)


def test_conv_fc_without_dense_layers_and_variants():
    fam = ConvFCFamily()
    cfg = copy.deepcopy(_config(14, [("VALID", 9), ("SAME", 11)], "1_then_2"))
    cfg.pop("pool")
    cfg["dense"] = []
    fam.validate(cfg)
    init, _, _, _ = conv._functions(fam.static_key(cfg))
    params = init(jax.random.PRNGKey(0))
    # 14 -VALID s1-> 12 -SAME s2-> 6: flatten 6*6*11 -> 10 classes
    assert params["Dense_0"]["kernel"].shape == (6 * 6 * 11, 10)
    assert sum(np.size(p) for p in jax.tree_util.tree_leaves(params)) == fam.cost(cfg).params
    assert fam.variant(cfg) == "conv_fc/0dense"
    assert ConvPoolingFamily().variant(_config(pool="max")) == "conv_pooling/max"
