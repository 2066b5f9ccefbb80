"""Prepared tensorflow-datasets datasets, read without TensorFlow and without any network access.

Only ``tfds.data_source(name, split=..., data_dir=..., download=False)`` is used: without
``download=False`` an offline machine hangs for minutes on network retries. The dataset must already be
prepared (ArrayRecord) in the data dir; pillow decodes images.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from datasets_cache import readers
from datasets_cache.errors import SourceError
from datasets_cache.sources import Source

_BATCH = 1024


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """``data_dir``, else ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``."""
    return Path(data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets").expanduser()


def _check_prepared(tfds_name: str, data_dir: Path) -> None:
    base = tfds_name.split(":")[0]
    prepared = list((data_dir / base).glob("**/dataset_info.json")) if (data_dir / base).is_dir() else []
    if not prepared:
        raise SourceError(f"no prepared TFDS dataset {tfds_name!r} under {data_dir} (no {base}/**/dataset_info.json)")


def _read_split(ds, image_key: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for start in range(0, len(ds), _BATCH):
        for ex in ds.__getitems__(list(range(start, min(start + _BATCH, len(ds))))):
            images.append(np.asarray(ex[image_key]))
            labels.append(int(ex[label_key]))
    return np.stack(images), np.asarray(labels, np.int32)


def fetch_tfds(tfds_name: str, data_dir: str | os.PathLike | None) -> dict[str, np.ndarray]:
    """Raw image arrays of prepared TFDS dataset ``tfds_name``: official 'test' marked, class names kept."""
    root = resolve_data_dir(data_dir)
    _check_prepared(tfds_name, root)
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise SourceError("tensorflow-datasets is not installed (pip install tensorflow-datasets pillow)") from None
    try:
        train = tfds.data_source(tfds_name, split="train", data_dir=str(root), download=False)
        info = train.dataset_info
        image_key, label_key = info.supervised_keys or ("image", "label")
        xs, ys = _read_split(train, image_key, label_key)
        official = [np.zeros(len(ys), bool)]
        if "test" in info.splits:
            test = tfds.data_source(tfds_name, split="test", data_dir=str(root), download=False)
            xt, yt = _read_split(test, image_key, label_key)
            xs, ys = np.concatenate([xs, xt]), np.concatenate([ys, yt])
            official.append(np.ones(len(yt), bool))
        names = list(getattr(info.features[label_key], "names", None) or [])
    except SourceError:
        raise
    except Exception as e:  # tfds raises many kinds; report them all as this source failing
        raise SourceError(f"reading TFDS dataset {tfds_name!r} from {root} failed: {type(e).__name__}: {e}") from None
    if xs.dtype != np.uint8:
        raise SourceError(f"TFDS dataset {tfds_name!r}: image feature {image_key!r} is {xs.dtype}, not uint8 images")
    arrays = readers.image_arrays(xs, ys, np.concatenate(official))
    if names:
        arrays["class_names"] = np.asarray(names, dtype=str)
    return arrays


def source(tfds_name: str, data_dir: str | os.PathLike | None) -> Source:
    """A :class:`Source` reading ``tfds_name`` from ``data_dir`` (see :func:`resolve_data_dir`)."""
    root = resolve_data_dir(data_dir)
    return Source("tfds", f"tfds.data_source({tfds_name!r}, data_dir={str(root)!r}, download=False)",
                  lambda: fetch_tfds(tfds_name, root))
