"""Tests of the ``mlp_ae`` family (families/mlp_ae.py): the shared image-family battery on 20 sampled specs."""

from families.mlp_ae import MLPAEFamily
from tests.image_family_checks import make_tests

globals().update(make_tests(MLPAEFamily()))


import numpy as np  # noqa: E402
import pytest  # noqa: E402

from families.base import ConfigError  # noqa: E402
from families.mlp_ae import ae_normalizer  # noqa: E402
from families.sampling import SpecRNG  # noqa: E402


def test_center_data_must_match_output():
    cfg = MLPAEFamily().sample(SpecRNG(5))
    cfg["data"]["center_data"] = not cfg["data"]["center_data"]
    with pytest.raises(ConfigError) as err:
        MLPAEFamily().validate(cfg)
    assert err.value.field == "data.center_data"


def test_normalizer_scale():
    n = ae_normalizer("l2", "mean", 64, centered=False)
    assert float(n(np.float32(1e-6))) == pytest.approx(0.0, abs=1e-5)  # rmse 1e-3
    assert float(n(np.float32(1e-2))) == pytest.approx(20 / 3, rel=1e-4)  # rmse 0.1
    s = ae_normalizer("l2", "sum", 64, centered=False)
    assert float(s(np.float32(64e-2))) == pytest.approx(float(n(np.float32(1e-2))), rel=1e-5)
    l1 = ae_normalizer("l1", "mean", 64, centered=True)
    assert float(l1(np.float32(0.2))) == pytest.approx(float(n(np.float32(1e-2))), rel=1e-5)
    assert float(n(np.float32(5.0))) == 10.0
