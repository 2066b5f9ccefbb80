"""Image datasets as uint8 NumPy arrays, split and optionally resized."""

from __future__ import annotations

import dataclasses
from typing import Iterable

import numpy as np

from datasets_cache import store
from datasets_cache.errors import InvalidDatasetNameError
from datasets_cache.registry import get_info
from datasets_cache.splits import SPLITS, image_split_indices


@dataclasses.dataclass(frozen=True)
class ImageData:
    """Image splits.

    Attributes:
      name: dataset name.
      splits: ``{split: (images uint8 (N, H, W, C), labels int32 (N,))}`` for the splits asked for.
      num_classes: number of classes (labels are ``0 .. num_classes - 1``).
      image_shape: ``(H, W, C)``.
      class_names: name of each class id (may be empty for ``tfds:`` datasets without names).
      source: where the raw data came from (from the cache metadata).
    """

    name: str
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    num_classes: int
    image_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    source: str


def _resize_weights(n_in: int, n_out: int) -> tuple[np.ndarray, int]:
    """Integer (n_out, n_in) weights whose rows all sum to the returned denominator.

    Shrinking: exact area (box-overlap) weights, in units of 1/n_out of an input pixel (row sum n_in).
    Enlarging: bilinear weights with pixel centres aligned and edges clamped, in units of 1/(2 n_out).
    """
    w = np.zeros((n_out, n_in), np.int64)
    if n_out <= n_in:
        for o in range(n_out):
            lo, hi = o * n_in, (o + 1) * n_in  # output pixel o covers [lo, hi) / n_out input pixels
            for i in range(lo // n_out, min(n_in, -(-hi // n_out))):
                w[o, i] = min(hi, (i + 1) * n_out) - max(lo, i * n_out)
        return w, n_in
    denom = 2 * n_out
    pos = np.clip((2 * np.arange(n_out) + 1) * n_in - n_out, 0, (n_in - 1) * denom)  # centre, in 1/denom
    left = pos // denom
    frac = pos - left * denom
    np.add.at(w, (np.arange(n_out), left), denom - frac)
    np.add.at(w, (np.arange(n_out), np.minimum(left + 1, n_in - 1)), frac)
    return w, denom


def resize_images(images: np.ndarray, size: int, chunk: int = 8192) -> np.ndarray:
    """Resize uint8 (N, H, W, C) images to (N, size, size, C), bit-exactly on any machine.

    Shrinking averages the exact input area each output pixel covers; enlarging is bilinear. Both are
    separable products with integer weights, so every intermediate is an integer below 2**24 and float32
    BLAS computes it exactly whatever its summation order; the final division rounds half up in integers.
    """
    n, h, w, c = images.shape
    if (h, w) == (size, size):
        return images
    if not 1 <= size <= 256 or max(h, w) > 256:
        raise ValueError(f"size must be in 1..256 and images at most 256 px, got {size} and {h}x{w}")
    wh, dh = _resize_weights(h, size)
    ww, dw = _resize_weights(w, size)
    denom = dh * dw
    wh32, ww32 = wh.astype(np.float32), ww.T.astype(np.float32)
    out = np.empty((n, size, size, c), np.uint8)
    planes = images.transpose(0, 3, 1, 2)  # (N, C, H, W)
    for start in range(0, n, chunk):
        x = np.ascontiguousarray(planes[start:start + chunk], dtype=np.float32)
        m = x.shape[0] * c
        y = (x.reshape(m * h, w) @ ww32).reshape(m, h, size).transpose(1, 0, 2).reshape(h, m * size)
        y = (wh32 @ y).reshape(size, m, size).transpose(1, 0, 2).astype(np.int64)  # (m, size, size)
        q = (2 * y + denom) // (2 * denom)
        out[start:start + chunk] = q.reshape(-1, c, size, size).transpose(0, 2, 3, 1)
    return out


def _resized(raw: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    return {**raw, "images": resize_images(raw["images"], size)}


def load_images(
    name: str,
    size: int | None = None,
    splits: Iterable[str] = SPLITS,
    *,
    tfds_data_dir: str | None = None,
) -> ImageData:
    """Load image dataset ``name`` (fetching and caching it on first use).

    Args:
      name: a built-in image dataset (``fashion_mnist``, ``mnist``, ``digits``) or ``tfds:<name>``.
      size: if given, images are resized to ``size x size`` (see :func:`resize_images`); the resized arrays
        are cached, so later calls are fast.
      splits: which of ``train``, ``inner_valid``, ``outer_valid``, ``test`` to return.
      tfds_data_dir: data dir of prepared tensorflow-datasets (default ``$TFDS_DATA_DIR``), for ``tfds:``.

    Returns:
      :class:`ImageData`; split membership is fixed forever (see :mod:`datasets_cache.splits`).
    """
    info = get_info(name)
    if info.kind != "image":
        raise InvalidDatasetNameError(f"{name!r} is a {info.kind} dataset; use load_text")
    splits = tuple(splits)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown splits {unknown}; choose from {SPLITS}")
    meta = store.raw_meta(name, tfds_data_dir=tfds_data_dir)
    if size is None or meta["arrays"]["images"]["shape"][1:3] == [size, size]:
        raw, meta = store.load_raw(name, tfds_data_dir=tfds_data_dir)
    else:
        # On a hit only the (small) resized entry is read and checked, not the full-size raw arrays.
        raw = store.cached_derived(
            name, "resize", {"size": int(size)}, lambda r: _resized(r, int(size)), tfds_data_dir=tfds_data_dir
        )
    images = raw["images"]
    index = image_split_indices(raw["official_test"])
    labels = raw["labels"]
    # tfds: datasets carry their class names in the raw arrays; built-ins in the registry.
    class_names = tuple(str(c) for c in raw["class_names"]) if "class_names" in raw else info.class_names
    num_classes = len(class_names) or int(labels.max()) + 1
    return ImageData(
        name=name,
        splits={s: (images[index[s]], labels[index[s]]) for s in splits},
        num_classes=num_classes,
        image_shape=tuple(int(d) for d in images.shape[1:]),
        class_names=class_names,
        source=str(meta.get("source", "")),
    )
