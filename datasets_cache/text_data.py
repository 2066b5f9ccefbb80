"""Token arrays for text tasks: language-model streams and classification examples, split and cached.

Splits are fixed: for language modelling, the corpus (documents in order) is cut into blocks of
:data:`LM_BLOCK_LINES` consecutive lines and the blocks are dealt by the fixed permutation of
:mod:`datasets_cache.splits` into 80% train / 5% inner_valid / 5% outer_valid / 10% test; each split's
blocks are concatenated in corpus order. For classification the same fractions are taken over examples.
Word vocabularies are built from the train split only.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from datasets_cache import readers, store
from datasets_cache.errors import InvalidDatasetNameError
from datasets_cache.registry import get_info
from datasets_cache.splits import SPLITS, carve, counts_from_fractions
from datasets_cache.tokens import BYTE_VOCAB_SIZE, PAD_ID, Vocab, build_word_vocab, byte_tokens

LM_BLOCK_LINES = 32
FRACTIONS = {"test": 0.1, "inner_valid": 0.05, "outer_valid": 0.05}
DEFAULT_WORD_VOCAB = 8192
# Classification examples: chunks of this many consecutive non-empty lines of a document; datasets not
# listed use each document (a verse, a fortune) as one example.
EXAMPLE_LINES = {"shakespeare": 8}
_SALT_LM, _SALT_CLS = 1, 2


@dataclasses.dataclass(frozen=True)
class TokenStreams:
    """Language-model data: ``splits[split]`` is a 1-D int32 token stream.

    ``vocab_size`` is the number of ids (256 for bytes); ``vocab`` is the word vocabulary (None for bytes).
    """

    name: str
    tokenizer: str
    splits: dict[str, np.ndarray]
    vocab_size: int
    vocab: Vocab | None


@dataclasses.dataclass(frozen=True)
class ClassificationData:
    """Text classification data.

    ``splits[split] = (tokens int32 (N, max_len) padded with 0, lengths int32 (N,), labels int32 (N,))``;
    ``lengths`` is authoritative (byte id 0 is also a NUL byte, which real text does not contain).
    ``class_counts[split]`` is the number of examples of each label id.
    """

    name: str
    label: str
    tokenizer: str
    splits: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    num_classes: int
    label_names: tuple[str, ...]
    vocab_size: int
    vocab: Vocab | None

    @property
    def class_counts(self) -> dict[str, np.ndarray]:
        """``{split: int64 (num_classes,)}`` examples per label id."""
        return {s: np.bincount(y, minlength=self.num_classes) for s, (_, _, y) in self.splits.items()}


def _check(name: str, tokenizer: str, vocab_size: int | None) -> int:
    if get_info(name).kind != "text":
        raise InvalidDatasetNameError(f"{name!r} is not a text dataset")
    if tokenizer == "byte":
        if vocab_size not in (None, BYTE_VOCAB_SIZE):
            raise ValueError(f"the byte tokenizer has vocab_size {BYTE_VOCAB_SIZE}, got {vocab_size}")
        return BYTE_VOCAB_SIZE
    if tokenizer == "word":
        return int(vocab_size or DEFAULT_WORD_VOCAB)
    raise ValueError(f"tokenizer must be 'byte' or 'word', got {tokenizer!r}")


def _vocab_from(arrays: dict[str, np.ndarray]) -> Vocab | None:
    return Vocab(tuple(str(w) for w in arrays["vocab"])) if "vocab" in arrays else None


def _lm_split_texts(documents: list[str]) -> dict[str, str]:
    lines = [line for doc in documents for line in doc.split("\n")]
    blocks = ["\n".join(lines[i:i + LM_BLOCK_LINES]) + "\n" for i in range(0, len(lines), LM_BLOCK_LINES)]
    index = carve(len(blocks), counts_from_fractions(len(blocks), **FRACTIONS), salt=_SALT_LM)
    return {s: "".join(blocks[i] for i in index[s]) for s in SPLITS}


def lm_stream(name: str, tokenizer: str = "byte", vocab_size: int | None = None) -> TokenStreams:
    """Token streams of text dataset ``name`` for language modelling, one per split (cached on disk).

    Args:
      name: ``shakespeare``, ``bible_kjv`` or ``fortunes``.
      tokenizer: ``'byte'`` (UTF-8 bytes, 256 ids) or ``'word'`` (:func:`build_word_vocab` on train).
      vocab_size: word vocabulary size (default 8192, ``<pad>``/``<unk>`` included); must be None or 256 for
        bytes.
    """
    size = _check(name, tokenizer, vocab_size)

    def compute(raw):
        texts = _lm_split_texts(readers.unpack_corpus(raw)[0])
        if tokenizer == "byte":
            return {s: byte_tokens(texts[s]) for s in SPLITS}
        vocab = build_word_vocab([texts["train"]], size)
        return {**{s: vocab.encode(texts[s]) for s in SPLITS}, "vocab": np.asarray(vocab.words, dtype=str)}

    arrays = store.cached_derived(
        name, "lm", {"tokenizer": tokenizer, "vocab_size": size, "block_lines": LM_BLOCK_LINES}, compute
    )
    vocab = _vocab_from(arrays)
    return TokenStreams(
        name=name,
        tokenizer=tokenizer,
        splits={s: arrays[s] for s in SPLITS},
        vocab_size=vocab.size if vocab else BYTE_VOCAB_SIZE,
        vocab=vocab,
    )


def _examples(name: str, documents: list[str], doc_labels: np.ndarray) -> tuple[list[str], np.ndarray]:
    k = EXAMPLE_LINES.get(name)
    if k is None:
        return documents, np.asarray(doc_labels, np.int32)
    texts, labels = [], []
    for doc, lab in zip(documents, doc_labels):
        lines = [line for line in doc.split("\n") if line.strip()]
        for i in range(0, len(lines) - k + 1, k):  # a short tail chunk is dropped
            texts.append("\n".join(lines[i:i + k]))
            labels.append(lab)
    return texts, np.asarray(labels, np.int32)


def _pad(seqs: list[np.ndarray], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    tokens = np.full((len(seqs), max_len), PAD_ID, np.int32)
    lengths = np.zeros(len(seqs), np.int32)
    for i, seq in enumerate(seqs):
        n = min(len(seq), max_len)
        tokens[i, :n] = seq[:n]
        lengths[i] = n
    return tokens, lengths


def text_classification(
    name: str,
    label: str,
    tokenizer: str = "byte",
    vocab_size: int | None = None,
    max_len: int = 128,
) -> ClassificationData:
    """Labelled text examples of dataset ``name``, tokenised, truncated to ``max_len`` and padded with 0.

    Examples: shakespeare, chunks of 8 consecutive non-empty lines of one work; bible_kjv, verses; fortunes,
    fortunes. ``label`` is one of the dataset's label kinds (shakespeare ``work``/``genre``; bible_kjv
    ``testament``/``book``/``book_group``; fortunes ``file``). Classes are not balanced: see
    :attr:`ClassificationData.class_counts`. Cached on disk by all arguments.
    """
    size = _check(name, tokenizer, vocab_size)
    info = get_info(name)
    if label not in info.label_kinds:
        raise ValueError(f"{name} has labels {info.label_kinds}, not {label!r}")
    if max_len < 1:
        raise ValueError(f"max_len must be positive, got {max_len}")

    def compute(raw):
        docs, _, labels = readers.unpack_corpus(raw)
        ids, names = labels[label]
        texts, ys = _examples(name, docs, ids)
        index = carve(len(texts), counts_from_fractions(len(texts), **FRACTIONS), salt=_SALT_CLS)
        out: dict[str, np.ndarray] = {"label_names": np.asarray(names, dtype=str)}
        if tokenizer == "byte":
            encode = byte_tokens
        else:
            vocab = build_word_vocab([texts[i] for i in index["train"]], size)
            encode = vocab.encode
            out["vocab"] = np.asarray(vocab.words, dtype=str)
        for s in SPLITS:
            out[f"tokens_{s}"], out[f"lengths_{s}"] = _pad([encode(texts[i]) for i in index[s]], max_len)
            out[f"labels_{s}"] = ys[index[s]]
        return out

    params = {"label": label, "tokenizer": tokenizer, "vocab_size": size, "max_len": int(max_len),
              "example_lines": EXAMPLE_LINES.get(name)}
    arrays = store.cached_derived(name, "cls", params, compute)
    vocab = _vocab_from(arrays)
    label_names = tuple(str(n) for n in arrays["label_names"])
    return ClassificationData(
        name=name,
        label=label,
        tokenizer=tokenizer,
        splits={s: (arrays[f"tokens_{s}"], arrays[f"lengths_{s}"], arrays[f"labels_{s}"]) for s in SPLITS},
        num_classes=len(label_names),
        label_names=label_names,
        vocab_size=vocab.size if vocab else BYTE_VOCAB_SIZE,
        vocab=vocab,
    )
