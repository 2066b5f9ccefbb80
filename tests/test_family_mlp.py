"""Tests of the ``mlp`` family (families/mlp.py): the shared image-family battery on 20 sampled specs."""

from families.mlp import MLPFamily
from tests.image_family_checks import make_tests

globals().update(make_tests(MLPFamily()))


# ---- the shared image-data config (families/image_data.py), tested once here ----

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from families import image_data  # noqa: E402
from families.base import ConfigError  # noqa: E402
from families.sampling import SpecRNG  # noqa: E402
from families.space import validate_config  # noqa: E402


def test_image_data_sampler_stays_in_space_and_respects_digits_size():
    space = image_data.data_space()
    seen = set()
    for seed in range(300):
        data = image_data.sample_data(SpecRNG(seed))
        validate_config(space, data)
        image_data.validate_data(data)
        seen.add(data["dataset"])
        if data["dataset"] == "digits":
            assert data["image_size"] == 8
    assert seen == set(image_data.DATASETS)


def test_image_data_rejects_digits_at_other_sizes():
    with pytest.raises(ConfigError) as err:
        image_data.validate_data({"dataset": "digits", "image_size": 14, "batch_size": 8, "center_data": False})
    assert err.value.field == "data.image_size"


def test_load_splits_shapes_subset_and_centering():
    data = {"dataset": "digits", "image_size": 8, "batch_size": 16, "center_data": True, "train_size": 500}
    splits, n_classes, shape = image_data.load_splits(data)
    assert n_classes == 10 and shape == (8, 8, 1)
    assert splits["train"]["x"].shape == (500, 8, 8, 1) and splits["train"]["x"].dtype == np.uint8
    assert splits["test"]["y"].dtype == np.int32
    full, _, _ = image_data.load_splits({**data, "train_size": 60000})
    assert full["train"]["x"].shape[0] > 500  # larger than the dataset keeps it whole
    again, _, _ = image_data.load_splits(dict(data))
    assert np.array_equal(np.asarray(again["train"]["y"]), np.asarray(splits["train"]["y"]))
    batch = image_data.make_sample_batch(16, True)(splits["train"], jax.random.PRNGKey(0))
    assert batch["image"].shape == (16, 8, 8, 1) and batch["image"].dtype == np.float32
    assert float(batch["image"].min()) >= -1.0 and float(batch["image"].max()) <= 1.0
    assert float(batch["image"].min()) < 0.0
    plain = image_data.make_sample_batch(16, False)(splits["train"], jax.random.PRNGKey(0))
    np.testing.assert_allclose(np.asarray(plain["image"]) * 2 - 1, np.asarray(batch["image"]), atol=1e-6)


def test_image_data_describe_columns():
    data = {"dataset": "mnist", "image_size": 14, "batch_size": 33, "center_data": False}
    assert image_data.describe(data) == {"dataset": "mnist", "input_shape": [14, 14, 1], "batch_size": 33}
