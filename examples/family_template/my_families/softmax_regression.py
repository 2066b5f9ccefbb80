"""``softmax_regression``: multinomial logistic regression on the 8×8 ``digits`` images, in plain JAX.

A template for a family of your own; every method the toolkit calls is here, each with what it must do.

Config (see :meth:`SoftmaxRegressionFamily.config_space`):

* ``dataset``: ``"digits"`` (scikit-learn's 8×8 digits, cached by the toolkit: ``taskgen data fetch digits``).
* ``batch_size``: examples per training step, 8–256.
* ``train_size``: the first ``train_size`` training images of a seeded shuffle (100–1078); at least
  ``batch_size`` (a cross-field rule :meth:`validate` adds).
* ``center_data``: scale pixels to [-1, 1] instead of [0, 1].

Model: ``logits = x W + b`` with ``W`` of shape ``(64, 10)`` and ``b`` of shape ``(10,)``: 650 parameters. The loss is
the mean cross-entropy of a batch. Normalizer: the toolkit's classification normalizer (chance
level maps to about 7, a perfect model below 0), so losses compare with the built-in families'.

Compiled-code reuse: tasks whose configs differ only in data (``train_size``, ``center_data``, the seed) share one
set of functions, found by the static key of the other fields (``dataset``, ``batch_size``); the data reach the
functions as arguments. (A float that the functions close over, e.g. a weight-decay factor, would belong in the
static key and cost one compile per value: pass such numbers in the data instead.)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import taskgen
from families.common import classification_normalizer, static_key
from families.errors import ConfigError
from families.space import Bool, Choice, Int, Struct

IMAGE_SHAPE = {"digits": (8, 8, 1)}
"""Datasets this family takes, with their image shape (H, W, C)."""
NUM_CLASSES = 10
TRAIN_IMAGES = 1078
"""Images in the toolkit's ``digits`` train split."""
DATA_ONLY = ("train_size", "center_data")
"""Config fields that change only the data arrays, not the compiled functions."""


def _input_dim(config) -> int:
    return int(np.prod(IMAGE_SHAPE[config["dataset"]]))


@functools.lru_cache(maxsize=None)
def _functions(key: str, input_dim: int, batch_size: int):
    """``(init, loss, sample_batch, normalizer)`` for one static key: cached, so tasks of equal static key get the
    same function objects and a trainer compiles them once."""
    del key  # only the cache key

    def init(rng):
        return {"w": jax.random.normal(rng, (input_dim, NUM_CLASSES), jnp.float32) / jnp.sqrt(float(input_dim)),
                "b": jnp.zeros((NUM_CLASSES,), jnp.float32)}

    def loss(params, batch, rng):
        del rng  # deterministic
        logits = batch["x"] @ params["w"] + params["b"]
        log_probs = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(log_probs, batch["y"][:, None], axis=1))

    def sample_batch(split_data, rng):
        rows = jax.random.randint(rng, (batch_size,), 0, split_data["x"].shape[0])
        return {"x": split_data["x"][rows], "y": split_data["y"][rows]}

    return jax.jit(init), loss, sample_batch, classification_normalizer(NUM_CLASSES)


@functools.lru_cache(maxsize=4)
def _images(dataset: str):
    """The dataset's four splits as ``{split: (x float32 (N, H·W·C) in [0, 1], y int32)}``, loaded once."""
    import datasets_cache

    data = datasets_cache.load_images(dataset)
    return {split: (x.reshape(len(x), -1).astype(np.float32) / 255.0, y.astype(np.int32))
            for split, (x, y) in data.splits.items()}


class SoftmaxRegressionFamily(taskgen.Family):
    """Softmax regression on real images (a template family)."""

    name = "softmax_regression"
    version = 1  # bump when a config's meaning changes, so frozen specs keep theirs

    def config_space(self):
        """The fields and the values each may take (``taskgen families`` shows them; validation uses them)."""
        return Struct({
            "dataset": Choice(tuple(IMAGE_SHAPE)),
            "batch_size": Int(8, 256),
            "train_size": Int(100, TRAIN_IMAGES),
            "center_data": Bool(),
        })

    def sample(self, rng) -> dict:
        """One fully-resolved config from ``rng`` (a seeded ``SpecRNG``: use nothing else random)."""
        batch_size = rng.log_int(16, 128)
        return {
            "dataset": "digits",
            "batch_size": batch_size,
            "train_size": rng.linear_int(max(batch_size, 200), TRAIN_IMAGES),
            "center_data": rng.bool(),
        }

    def validate(self, config) -> None:
        """The config space's checks, then the rules that tie fields together, each naming its field."""
        super().validate(config)
        if config["train_size"] < config["batch_size"]:
            raise ConfigError("train_size", f"{config['train_size']} is smaller than batch_size "
                                            f"{config['batch_size']}")

    def cost(self, config) -> taskgen.Cost:
        """Parameters (exact) and FLOPs per training step (forward + backward matmuls: 3 × 2·B·D·C) from the
        config alone: ``taskgen list --max-params`` filters on them without building anything."""
        d, b = _input_dim(config), config["batch_size"]
        return taskgen.Cost(params=d * NUM_CLASSES + NUM_CLASSES, flops_per_step=6 * b * d * NUM_CLASSES)

    def variant(self, config) -> str:
        """A coarse sub-kind; ``taskgen sample --hold-out-variant`` can put a whole one in meta_test."""
        return f"{self.name}/{config['dataset']}"

    def describe(self, config) -> dict:
        """The manifest's columns for this config."""
        return {"dataset": config["dataset"], "input_shape": list(IMAGE_SHAPE[config["dataset"]]),
                "batch_size": config["batch_size"]}

    def build(self, spec) -> taskgen.Task:
        """The runnable task: cached functions for the static key, and this spec's data arrays."""
        config = spec.config
        self.validate(config)
        key = static_key(self.name, config, drop=DATA_ONLY)
        init, loss, sample_batch, normalizer = _functions(key, _input_dim(config), config["batch_size"])
        splits = {}
        for split, (x, y) in _images(config["dataset"]).items():
            if split == "train":  # a seeded subset: the same spec always trains on the same images
                keep = np.random.default_rng(spec.seed).permutation(len(x))[: config["train_size"]]
                x, y = x[keep], y[keep]
            if config["center_data"]:
                x = 2.0 * x - 1.0
            splits[split] = {"x": jnp.asarray(x), "y": jnp.asarray(y)}
        return taskgen.Task(spec=spec, init=init, loss=loss, sample_batch=sample_batch, splits=splits,
                            normalizer=normalizer, static_key=key, batch_size=config["batch_size"])
