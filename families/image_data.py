"""The image-data part of a config, shared by every image family (mlp, mlp_ae, mlp_vae, conv_*, maf, nvp).

An image family keeps its data settings in one sub-object, ``config["data"]``::

    {"dataset": "fashion_mnist", "image_size": 14, "batch_size": 37, "center_data": false}
    {"dataset": "mnist", "image_size": 28, "batch_size": 8, "center_data": true, "train_size": 2113}

Fields (see :func:`data_space`):

- ``dataset`` ∈ {fashion_mnist, mnist, digits} — real data from :mod:`datasets_cache` (all grayscale, 10 classes).
- ``image_size`` ∈ {8, 14, 16, 28}: images are resized by ``datasets_cache`` to ``size × size``; ``digits`` is
  natively 8×8 and only allows 8.
- ``batch_size`` ∈ [8, 128] (TaskSet: logint[8, 512]; shrunk so tasks stay CPU-friendly).
- ``center_data``: pixels map to [-1, 1] (``2x - 1``) instead of [0, 1].
- ``train_size`` (optional): keep at most this many training examples, a fixed random subset (NumPy's frozen
  ``RandomState`` seeded from the dataset name, so the subset is the same on every machine). Values larger than
  the dataset keep it whole. Validation and test splits are never subset.

Sampling (:func:`sample_data`): dataset weighted fashion_mnist 5 / mnist 3 / digits 2; image size uniform over
the sizes the dataset allows; batch ``log_int(8, 128)``; ``center_data`` with p 0.5; ``train_size`` with p 0.15
as ``log_int(500, 50000)``. Families may narrow the sizes (``sizes=``) to keep costs down.

Split arrays (:func:`load_splits`): ``{split: {"x": uint8 (N, H, W, 1), "y": int32 (N,)}}``. Images stay uint8
on the device (4× less memory than float32, and every task of one dataset/size/train_size shares the same
device arrays); :func:`make_sample_batch` gathers rows and converts them to float32 inside the jitted step:
``{"image": float32 (B, H, W, 1) in [0, 1] or [-1, 1], "label": int32 (B,)}``.

Compiled-code reuse: only ``image_size`` and ``batch_size`` (and ``center_data``, which the batch function
applies) change the compiled program; :func:`static_fields` returns them, for a family's static key.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from families._lazy import np

from families import common
from families.base import SPLITS, ConfigError, Family, Task
from families.sampling import derive_seed
from families.space import Bool, Int, Struct, choices

DATASETS = ("fashion_mnist", "mnist", "digits")
DATASET_WEIGHTS = {"fashion_mnist": 5, "mnist": 3, "digits": 2}
IMAGE_SIZES = (8, 14, 16, 28)
NATIVE_SIZE = {"fashion_mnist": 28, "mnist": 28, "digits": 8}
ALLOWED_SIZES = {"fashion_mnist": IMAGE_SIZES, "mnist": IMAGE_SIZES, "digits": (8,)}
NUM_CLASSES = {"fashion_mnist": 10, "mnist": 10, "digits": 10}
CHANNELS = 1
BATCH_RANGE = (8, 128)
TRAIN_SIZE_RANGE = (100, 60000)
"""Allowed range of the optional ``train_size`` field (sampled from log_int(500, 50000))."""


def data_space(sizes=IMAGE_SIZES, batch_range=BATCH_RANGE) -> Struct:
    """The ``data`` sub-space. A family may narrow ``sizes`` or ``batch_range`` (and must then say so)."""
    return Struct(
        {
            "dataset": choices(DATASETS),
            "image_size": choices(sorted(sizes)),
            "batch_size": Int(*batch_range),
            "center_data": Bool(),
            "train_size": Int(*TRAIN_SIZE_RANGE),
        },
        optional=frozenset({"train_size"}),
    )


def validate_data(data: Mapping[str, Any], path: str = "data") -> None:
    """Cross-field checks the schema cannot express (call after the schema check): a dataset's allowed sizes."""
    allowed = ALLOWED_SIZES[data["dataset"]]
    if data["image_size"] not in allowed:
        raise ConfigError(f"{path}.image_size",
                          f"{data['image_size']} is not allowed for dataset {data['dataset']!r}; allowed: "
                          f"{list(allowed)}")


def sample_data(rng, sizes=IMAGE_SIZES, batch_range=BATCH_RANGE) -> dict:
    """Draw a ``data`` config from ``rng`` (a :class:`~families.sampling.SpecRNG`); see the module docstring."""
    dataset = rng.weighted(DATASET_WEIGHTS)
    allowed = [s for s in ALLOWED_SIZES[dataset] if s in sizes] or [min(ALLOWED_SIZES[dataset])]
    data = {
        "dataset": dataset,
        "image_size": rng.choice(allowed),
        "batch_size": rng.log_int(*batch_range),
        "center_data": rng.bool(0.5),
    }
    if rng.bool(0.15):
        data["train_size"] = rng.log_int(500, 50000)
    return data


def input_shape(data: Mapping[str, Any]) -> tuple[int, int, int]:
    """``(H, W, C)`` of one image, known without loading anything."""
    return (data["image_size"], data["image_size"], CHANNELS)


def input_dim(data: Mapping[str, Any]) -> int:
    """Number of scalars of one flattened image."""
    h, w, c = input_shape(data)
    return h * w * c


def num_classes(data: Mapping[str, Any]) -> int:
    """Number of classes of the dataset (known without loading anything)."""
    return NUM_CLASSES[data["dataset"]]


def static_fields(data: Mapping[str, Any]) -> dict:
    """The fields of ``data`` that change compiled code (for a family's static key): image size, batch size,
    center_data (applied inside the batch function). The dataset and ``train_size`` change only the arrays."""
    return {"image_size": data["image_size"], "batch_size": data["batch_size"],
            "center_data": data["center_data"], "num_classes": num_classes(data)}


def describe(data: Mapping[str, Any]) -> dict:
    """Manifest columns: ``dataset`` (str), ``input_shape`` (list of int), ``batch_size`` (int)."""
    return {"dataset": data["dataset"], "input_shape": list(input_shape(data)), "batch_size": data["batch_size"]}


def _subset_indices(dataset: str, n: int, keep: int) -> np.ndarray:
    """A fixed random subset of ``keep`` of ``n`` indices, in increasing order (frozen NumPy RandomState)."""
    perm = np.random.RandomState(derive_seed("train_size", dataset)).permutation(n)
    return np.sort(perm[:keep])


@functools.lru_cache(maxsize=32)
def _load_cached(dataset: str, image_size: int, train_size):
    from families._lazy import jax
    from datasets_cache.images import load_images

    size = None if image_size == NATIVE_SIZE[dataset] else image_size
    data = load_images(dataset, size=size)
    out = {}
    for split in SPLITS:
        x, y = data.splits[split]
        x = np.asarray(x)
        y = np.asarray(y).astype(np.int32)
        if x.ndim == 3:
            x = x[..., None]
        if x.dtype != np.uint8:
            raise TypeError(f"datasets_cache returned {x.dtype} images for {dataset}; expected uint8")
        if x.shape[1:] != (image_size, image_size, CHANNELS):
            raise ValueError(f"datasets_cache returned images of shape {x.shape[1:]} for {dataset} at size "
                             f"{image_size}; expected {(image_size, image_size, CHANNELS)}")
        if split == "train" and train_size is not None and train_size < x.shape[0]:
            idx = _subset_indices(dataset, x.shape[0], train_size)
            x, y = x[idx], y[idx]
        out[split] = {"x": jax.device_put(x), "y": jax.device_put(y)}
    return out, int(data.num_classes)


def load_splits(data: Mapping[str, Any]):
    """Load the real data of a ``data`` config: ``(splits, num_classes, input_shape)``.

    ``splits[split] = {"x": uint8 jnp (N, H, W, 1), "y": int32 jnp (N,)}`` for the four splits. Results are
    cached per (dataset, image_size, train_size), so tasks that share data share device arrays.
    """
    splits, n_classes = _load_cached(data["dataset"], data["image_size"], data.get("train_size"))
    return dict(splits), n_classes, input_shape(data)


def to_float(x, center: bool):
    """uint8 pixels → float32 in [0, 1], or [-1, 1] when ``center``."""
    from families._lazy import jnp

    x = x.astype(jnp.float32) * (1.0 / 255.0)
    return 2.0 * x - 1.0 if center else x


@functools.lru_cache(maxsize=None)
def make_sample_batch(batch_size: int, center_data: bool):
    """A jittable ``sample_batch(split_data, key) -> {"image": float32 (B,H,W,1), "label": int32 (B,)}``.

    Rows are drawn with replacement (:func:`families.common.sample_rows`). The same function object is returned
    for equal arguments, so it can sit inside a family's compiled-code cache.
    """
    from families.common import sample_rows

    def sample_batch(split_data, key):
        rows = sample_rows(split_data, key, batch_size)
        return {"image": to_float(rows["x"], center_data), "label": rows["y"]}

    return sample_batch


class ImageFamily(Family):
    """Base of the families whose config carries an image-data sub-config under ``"data"``.

    It validates that sub-config, derives the static key (the config with ``data`` reduced to
    :func:`static_fields`), fills the manifest columns, and builds tasks from :meth:`functions`, which a subclass
    implements as ``static_key -> (init, loss, sample_batch, normalizer)`` (an ``lru_cache``'d factory).
    """

    def functions(self, key: str):
        """The four task functions of static key ``key``."""
        raise NotImplementedError

    def validate(self, config: Mapping[str, Any]) -> None:
        """Schema check plus the dataset's allowed image sizes."""
        super().validate(config)
        validate_data(config["data"])

    def describe(self, config: Mapping[str, Any]) -> dict:
        """Manifest columns: dataset, input_shape, batch_size."""
        return describe(config["data"])

    def static_key(self, config: Mapping[str, Any]) -> str:
        """The compiled-shape key: the config without the dataset choice and ``train_size``."""
        return common.static_key(self.name, {**config, "data": static_fields(config["data"])})

    def build(self, spec) -> Task:
        """Build ``spec`` into a :class:`Task` on its real image data."""
        self.validate(spec.config)
        key = self.static_key(spec.config)
        init, loss, sample_batch, normalizer = self.functions(key)
        splits, _, _ = load_splits(spec.config["data"])
        return Task(spec=spec, init=init, loss=loss, sample_batch=sample_batch, splits=splits,
                    normalizer=normalizer, static_key=key, batch_size=spec.config["data"]["batch_size"])
