"""Deterministic tokenisers: UTF-8 bytes (vocabulary 256) and a frequency-ranked word vocabulary."""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Iterable

import numpy as np

PAD_ID = 0
UNK_ID = 1
PAD, UNK = "<pad>", "<unk>"
BYTE_VOCAB_SIZE = 256

# Lowercased words (with inner apostrophes: "o'er", "don't") or single punctuation marks; whitespace is dropped.
WORD_RE = re.compile(r"\w+(?:'\w+)*|[^\w\s]")


def byte_tokens(text: str) -> np.ndarray:
    """The UTF-8 bytes of ``text`` as int32 token ids in ``0..255``."""
    return np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.int32)


def words(text: str) -> list[str]:
    """Split ``text`` into lowercase word and punctuation tokens (see :data:`WORD_RE`)."""
    return WORD_RE.findall(text.lower())


@dataclasses.dataclass(frozen=True)
class Vocab:
    """A word vocabulary: ``words[i]`` is the token of id ``i``; id 0 is ``<pad>``, id 1 is ``<unk>``."""

    words: tuple[str, ...]

    def __post_init__(self):
        if self.words[:2] != (PAD, UNK):
            raise ValueError("a Vocab starts with <pad>, <unk>")
        object.__setattr__(self, "_index", {w: i for i, w in enumerate(self.words)})

    def __repr__(self) -> str:
        return f"Vocab(size={self.size}, words={self.words[:8]}...)"

    @property
    def size(self) -> int:
        """Number of ids, ``<pad>`` and ``<unk>`` included."""
        return len(self.words)

    def encode(self, text: str) -> np.ndarray:
        """int32 ids of the word tokens of ``text``; words not in the vocabulary map to ``<unk>`` (1)."""
        index = self._index
        return np.asarray([index.get(w, UNK_ID) for w in words(text)], np.int32)

    def decode(self, ids: Iterable[int]) -> str:
        """Space-joined tokens of ``ids``, padding dropped."""
        return " ".join(self.words[i] for i in ids if i != PAD_ID)


def build_word_vocab(corpus: "Iterable[str] | object", size: int) -> Vocab:
    """The ``size``-id vocabulary of the most frequent word tokens of ``corpus``.

    ``corpus`` is an iterable of strings or a :class:`~datasets_cache.text.TextCorpus` (its documents).
    Ids: 0 ``<pad>``, 1 ``<unk>``, then tokens sorted by (-count, token): deterministic, no randomness. The
    vocabulary is smaller than ``size`` when the corpus has fewer distinct tokens.
    """
    if size < 2:
        raise ValueError(f"vocabulary size must be >= 2 (pad, unk), got {size}")
    texts = getattr(corpus, "documents", corpus)
    if isinstance(texts, str):
        texts = [texts]
    counts: collections.Counter[str] = collections.Counter()
    for text in texts:
        counts.update(words(text))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return Vocab((PAD, UNK) + tuple(w for w, _ in ranked[: size - 2]))
