"""Text corpora: raw documents with their real labels."""

from __future__ import annotations

import dataclasses

import numpy as np

from datasets_cache import readers, store
from datasets_cache.errors import InvalidDatasetNameError
from datasets_cache.registry import get_info


@dataclasses.dataclass(frozen=True)
class TextCorpus:
    """A text corpus.

    Attributes:
      name: dataset name.
      documents: the documents, in a fixed order (shakespeare: one per work; bible_kjv: one per verse;
        fortunes: one per fortune).
      doc_names: an id for each document (``hamlet``, ``Ge1:1``, ``computers/12``).
      labels: ``{label kind: int32 (num documents,)}`` label id of each document.
      label_names: ``{label kind: name of each label id}``.
      label_meanings: ``{label kind: what the label is}`` (from the registry).
      source: where the text came from.
    """

    name: str
    documents: tuple[str, ...]
    doc_names: tuple[str, ...]
    labels: dict[str, np.ndarray]
    label_names: dict[str, tuple[str, ...]]
    label_meanings: dict[str, str]
    source: str


def load_text(name: str) -> TextCorpus:
    """Load text dataset ``name`` (``shakespeare``, ``bible_kjv``, ``fortunes``), fetching it on first use.

    Labels: shakespeare ``work`` (42) and ``genre`` (comedy/history/tragedy/poetry); bible_kjv ``testament``
    (OT/NT), ``book`` (66) and ``book_group`` (8); fortunes ``file`` (40 category files).
    """
    info = get_info(name)
    if info.kind != "text":
        raise InvalidDatasetNameError(f"{name!r} is an {info.kind} dataset; use load_images")
    raw, meta = store.load_raw(name)
    docs, names, labels = readers.unpack_corpus(raw)
    return TextCorpus(
        name=name,
        documents=tuple(docs),
        doc_names=tuple(names),
        labels={k: ids for k, (ids, _) in labels.items()},
        label_names={k: lnames for k, (_, lnames) in labels.items()},
        label_meanings=dict(info.labels),
        source=str(meta.get("source", "")),
    )
