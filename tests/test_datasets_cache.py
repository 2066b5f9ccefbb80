"""Tests of datasets_cache: the cache (synthetic arrays in a temp dir) and the real datasets (default cache).

Real-data tests fetch for real from this machine's registries into the default cache dir, so a second run
is fast; when a source is unavailable they fail with the error, they never skip.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import datasets_cache as dc
from datasets_cache import cache, readers, sources, splits, store
from datasets_cache.cli import data as data_cli
from datasets_cache.errors import CacheCorruptError, DatasetUnavailableError, InvalidDatasetNameError, SourceError

# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("TASKGEN_DATA_DIR", str(root))
    return root


def _synthetic_images(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return readers.image_arrays(rng.integers(0, 256, (n, 8, 8), dtype=np.uint8), np.arange(n) % 10)


class FakeSource:
    """A source whose fetch returns fixed arrays (or raises) and counts its calls."""

    def __init__(self, arrays=None, error=None):
        self.arrays, self.error, self.calls = arrays, error, 0

    def fetch(self):
        self.calls += 1
        if self.error:
            raise SourceError(self.error)
        return dict(self.arrays)


@pytest.fixture
def fake_digits(tmp_cache, monkeypatch):
    """'digits' served by a synthetic in-memory source, in a temp cache."""
    fake = FakeSource(_synthetic_images())
    monkeypatch.setattr(sources, "sources_for", lambda name: [sources.Source("test", "synthetic", fake.fetch)])
    return fake


def _no_temp_files(root):
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


def _digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------- cache unit


def test_entry_round_trip_records_checksum(tmp_cache):
    arrays = _synthetic_images()
    path = cache.write_entry(tmp_cache / "x", "data", arrays, {"source": "synthetic"})
    got, meta = cache.read_entry(tmp_cache / "x", "data")
    assert set(got) == set(arrays) and all(np.array_equal(got[k], arrays[k]) for k in arrays)
    assert meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta["arrays"]["images"] == {"shape": [50, 8, 8, 1], "dtype": "|u1"}
    assert meta["source"] == "synthetic"
    assert not _no_temp_files(tmp_cache)


def test_same_arrays_give_same_bytes(tmp_cache):
    a = cache.write_entry(tmp_cache / "a", "data", _synthetic_images(), {}).read_bytes()
    b = cache.write_entry(tmp_cache / "b", "data", _synthetic_images(), {}).read_bytes()
    assert a == b
    with np.load(tmp_cache / "a" / "data.npz", allow_pickle=False) as npz:  # still a plain npz
        assert sorted(npz.files) == ["images", "labels", "official_test"]


def test_object_arrays_are_refused(tmp_cache):
    with pytest.raises(TypeError, match="pickle"):
        cache.write_entry(tmp_cache, "bad", {"a": np.array([{"x": 1}], dtype=object)}, {})
    assert not tmp_cache.exists() or not any(tmp_cache.rglob("*"))


def test_truncated_file_is_detected(tmp_cache):
    cache.write_entry(tmp_cache, "data", _synthetic_images(), {})
    npz = tmp_cache / "data.npz"
    npz.write_bytes(npz.read_bytes()[:-100])
    with pytest.raises(CacheCorruptError, match="truncated"):
        cache.read_entry(tmp_cache, "data")


def test_checksum_mismatch_is_detected(tmp_cache):
    cache.write_entry(tmp_cache, "data", _synthetic_images(), {})
    npz = tmp_cache / "data.npz"
    raw = bytearray(npz.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    npz.write_bytes(bytes(raw))
    with pytest.raises(CacheCorruptError, match="sha256"):
        cache.read_entry(tmp_cache, "data")


def test_failed_write_leaves_nothing(tmp_cache, monkeypatch):
    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        cache.write_entry(tmp_cache / "x", "data", _synthetic_images(), {})
    assert list((tmp_cache / "x").iterdir()) == []


# -------------------------------------------------------------------------------- fetch orchestration


def test_fetch_caches_and_second_load_uses_cache(fake_digits):
    a = dc.load_images("digits")
    b = dc.load_images("digits")
    assert fake_digits.calls == 1
    assert dc.is_cached("digits") and dc.verify("digits")[0]
    for s in dc.SPLITS:
        assert _digest(*a.splits[s]) == _digest(*b.splits[s])


def test_checksum_mismatch_triggers_refetch(fake_digits):
    dc.fetch("digits", progress=False)
    npz = dc.dataset_path("digits") / "data.npz"
    raw = bytearray(npz.read_bytes())
    raw[-200] ^= 0x55
    npz.write_bytes(bytes(raw))
    assert not dc.verify("digits")[0]
    with pytest.warns(UserWarning, match="corrupt"):
        arrays, _ = store.load_raw("digits")
    assert fake_digits.calls == 2
    assert np.array_equal(arrays["images"], _synthetic_images()["images"])
    assert dc.verify("digits")[0]


def test_truncated_cache_triggers_refetch(fake_digits):
    dc.fetch("digits", progress=False)
    npz = dc.dataset_path("digits") / "data.npz"
    npz.write_bytes(npz.read_bytes()[:1000])
    assert not dc.is_cached("digits")
    with pytest.warns(UserWarning, match="truncated"):
        dc.load_images("digits")
    assert fake_digits.calls == 2


def test_corrupt_cache_and_no_source_gives_clear_error(fake_digits):
    dc.fetch("digits", progress=False)
    (dc.dataset_path("digits") / "data.npz").write_bytes(b"garbage")
    fake_digits.error = "offline"
    with pytest.warns(UserWarning, match="corrupt"), pytest.raises(DatasetUnavailableError) as e:
        dc.load_images("digits")
    assert "pip install scikit-learn" in str(e.value) and "offline" in str(e.value)
    assert not _no_temp_files(dc.data_dir())
    assert not (dc.dataset_path("digits") / "data.npz").exists()


def test_missing_source_names_what_to_install(tmp_cache, tmp_path, monkeypatch):
    # The real fashion_mnist sources, with no system files and no apt-get on PATH.
    monkeypatch.setattr(sources, "FASHION_MNIST_DIR", tmp_path / "nowhere")
    (tmp_path / "emptybin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "emptybin"))
    with pytest.raises(DatasetUnavailableError) as e:
        dc.load_images("fashion_mnist")
    msg = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in msg and "TASKGEN_DATA_DIR" in msg
    assert "`apt-get` is not installed" in msg
    assert not dc.is_cached("fashion_mnist")
    assert not _no_temp_files(tmp_cache)


def test_command_failure_reports_stderr_tail(tmp_path):
    with pytest.raises(SourceError, match="exited with 3; stderr tail:\nboom"):
        sources.run_command(["sh", "-c", "echo boom >&2; exit 3"], cwd=tmp_path)
    with pytest.raises(SourceError, match="timed out"):
        sources.run_command(["sleep", "5"], cwd=tmp_path, timeout=0.2)


# ------------------------------------------------------------------------------------------ names


@pytest.mark.parametrize(
    "name", ["../x", "a/b", "x/../../etc", "Fashion", "", "fashion mnist", "tfds:../x", "tfds:a/../b", "tfds:", "/etc"]
)
def test_bad_names_are_refused(tmp_cache, name):
    with pytest.raises(InvalidDatasetNameError):
        dc.dataset_path(name)


def test_paths_stay_inside_cache(tmp_cache):
    for name in ["fashion_mnist", "tfds:cifar10", "tfds:mnist/config:3.0.1"]:
        assert dc.dataset_path(name).parent == tmp_cache.resolve()


def test_unknown_dataset_lists_known_ones(tmp_cache):
    with pytest.raises(InvalidDatasetNameError, match="fashion_mnist"):
        dc.load_images("cifar10")


# ------------------------------------------------------------------------------------------ splits


def test_permutation_is_pinned():
    # Pinned values: if this changes, every split of every dataset changes.
    assert splits.permutation(10).tolist() == [4, 6, 0, 9, 8, 3, 7, 2, 5, 1]
    assert sorted(splits.permutation(1000).tolist()) == list(range(1000))


def test_image_splits_disjoint_and_sized():
    official = np.zeros(70000, bool)
    official[60000:] = True
    idx = splits.image_split_indices(official)
    sizes = {s: len(i) for s, i in idx.items()}
    assert sizes == {"train": 50000, "inner_valid": 5000, "outer_valid": 5000, "test": 10000}
    assert np.array_equal(np.sort(np.concatenate(list(idx.values()))), np.arange(70000))
    assert np.array_equal(idx["test"], np.arange(60000, 70000))
    sizes = {s: len(i) for s, i in splits.image_split_indices(np.zeros(1797, bool)).items()}
    assert sizes == {"train": 1078, "inner_valid": 180, "outer_valid": 180, "test": 359}


# ------------------------------------------------------------------------------------------ resize


@pytest.mark.parametrize("size", [4, 8, 14, 16, 28, 32])
def test_resize_shapes_and_constant_images(size):
    x = np.full((3, 28, 28, 1), 77, np.uint8)
    y = dc.resize_images(x, size)
    assert y.shape == (3, size, size, 1) and y.dtype == np.uint8
    assert (y == 77).all()


def test_resize_is_an_exact_area_average():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (5, 28, 28, 3), dtype=np.uint8)
    y = dc.resize_images(x, 14)
    block = x.astype(np.int64).reshape(5, 14, 2, 14, 2, 3).sum((2, 4))
    assert np.array_equal(y, ((2 * block + 4) // 8).astype(np.uint8))
    assert np.array_equal(dc.resize_images(x, 9), dc.resize_images(x, 9))


# ------------------------------------------------------------------------------------ tokenisation


def test_byte_tokens():
    t = dc.byte_tokens("Hé!")
    assert t.dtype == np.int32 and t.tolist() == [72, 195, 169, 33]


def test_word_vocab_is_deterministic():
    docs = ["The cat sat.", "the dog sat, the end", "O'er the hills"]
    v1, v2 = dc.build_word_vocab(docs, 6), dc.build_word_vocab(list(reversed(docs)), 6)
    assert v1 == v2
    assert v1.words == ("<pad>", "<unk>", "the", "sat", ",", ".")  # by (-count, word)
    assert v1.encode("The cat, the end").tolist() == [2, 1, 4, 2, 1]
    assert dc.build_word_vocab(docs, 100).size == 2 + 9
    assert "o'er" in dc.build_word_vocab(docs, 100).words


# ------------------------------------------------------------------------------- text on synthetic data


@pytest.fixture
def fake_fortunes(tmp_cache, monkeypatch):
    files = {
        "cats": b"A cat sat.\n%\nCats purr\nloudly.\n%\n" * 30,
        "dogs": b"Dogs bark!\n%\nA dog ran far.\n%\n" * 30,
    }
    fake = FakeSource(readers.fortunes_corpus(files))
    monkeypatch.setattr(sources, "sources_for", lambda name: [sources.Source("test", "synthetic", fake.fetch)])
    return fake


def test_text_pipeline_on_synthetic_corpus(fake_fortunes, monkeypatch):
    corpus = dc.load_text("fortunes")
    assert len(corpus.documents) == 120 and corpus.label_names["file"] == ("cats", "dogs")
    assert corpus.labels["file"][corpus.documents.index("Dogs bark!")] == 1
    lm = dc.lm_stream("fortunes", "word", 50)
    cls = dc.text_classification("fortunes", "file", "byte", max_len=12)
    tokens, lengths, labels = cls.splits["train"]
    assert tokens.shape[1] == 12 and (tokens[np.arange(12)[None] >= lengths[:, None]] == 0).all()
    assert sum(len(cls.splits[s][2]) for s in dc.SPLITS) == 120
    assert lm.vocab.words[:2] == ("<pad>", "<unk>") and lm.vocab_size == lm.vocab.size

    # Second calls are served from the derived cache without touching the raw data.
    monkeypatch.setattr(store, "load_raw", lambda *a, **k: pytest.fail("raw data reloaded"))
    lm2 = dc.lm_stream("fortunes", "word", 50)
    cls2 = dc.text_classification("fortunes", "file", "byte", max_len=12)
    assert all(np.array_equal(lm.splits[s], lm2.splits[s]) for s in dc.SPLITS)
    assert all(_digest(*cls.splits[s]) == _digest(*cls2.splits[s]) for s in dc.SPLITS)
    assert fake_fortunes.calls == 1


# -------------------------------------------------------------------------------------------- tfds


def test_tfds_missing_dataset_is_a_clear_error(tmp_cache, tmp_path):
    with pytest.raises(DatasetUnavailableError) as e:
        dc.load_images("tfds:cifar10", tfds_data_dir=str(tmp_path / "tfds"))
    assert "no prepared TFDS dataset 'cifar10'" in str(e.value) and "TFDS_DATA_DIR" in str(e.value)


_TFDS_WRITER = """
import sys
import numpy as np
import tensorflow_datasets as tfds

class TinyImages(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(6, 6, 1), dtype=np.uint8),
                "label": tfds.features.ClassLabel(names=["a", "b", "c"]),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(40, 0), "test": self._generate_examples(10, 100)}

    def _generate_examples(self, n, offset):
        for i in range(n):
            yield i, {"image": np.full((6, 6, 1), i + offset, np.uint8), "label": i % 3}

TinyImages(data_dir=sys.argv[1], file_format="array_record").download_and_prepare()
"""


def test_tfds_prepared_dataset_round_trip(tmp_cache, tmp_path):
    """A real prepared ArrayRecord dataset, written by tfds (no TensorFlow) in another process, read offline."""
    data_dir = tmp_path / "tfds"
    proc = subprocess.run([sys.executable, "-c", _TFDS_WRITER, str(data_dir)], capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    d = dc.load_images("tfds:tiny_images", tfds_data_dir=str(data_dir))
    assert d.class_names == ("a", "b", "c") and d.num_classes == 3 and d.image_shape == (6, 6, 1)
    sizes = {s: len(y) for s, (_, y) in d.splits.items()}
    assert sizes == {"train": 32, "inner_valid": 4, "outer_valid": 4, "test": 10}
    assert sorted(d.splits["test"][0][:, 0, 0, 0].tolist()) == list(range(100, 110))
    assert dc.load_images("tfds:tiny_images", size=3, tfds_data_dir=str(data_dir)).image_shape == (3, 3, 1)


# --------------------------------------------------------------------------------------------- CLI


def test_cli_list_path_and_bad_name(tmp_cache):
    runner = CliRunner()
    res = runner.invoke(data_cli, ["list", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert {r["name"] for r in rows} == {"fashion_mnist", "mnist", "digits", "shakespeare", "bible_kjv", "fortunes"}
    assert all(r["cached"] is False for r in rows)
    res = runner.invoke(data_cli, ["path", "mnist"])
    assert res.exit_code == 0 and res.output.strip() == str(tmp_cache.resolve() / "mnist")
    res = runner.invoke(data_cli, ["path", "../x"])
    assert res.exit_code == 2 and "invalid dataset name" in res.output
    assert runner.invoke(data_cli, ["--help"]).exit_code == 0


def test_cli_fetch_and_verify(fake_digits):
    runner = CliRunner()
    assert runner.invoke(data_cli, ["verify", "digits"]).exit_code == 1  # not cached yet
    res = runner.invoke(data_cli, ["fetch", "digits"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(data_cli, ["verify", "digits", "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["digits"]["ok"] is True
    npz = dc.dataset_path("digits") / "data.npz"
    npz.write_bytes(npz.read_bytes()[:-1] + b"!")
    res = runner.invoke(data_cli, ["verify", "digits"])
    assert res.exit_code == 1 and "CORRUPT" in res.output
    fake_digits.error = "offline"
    npz.unlink()
    with pytest.warns(UserWarning, match="missing"):
        assert runner.invoke(data_cli, ["fetch", "digits"]).exit_code == 1
    assert runner.invoke(data_cli, ["fetch"]).exit_code == 2  # no names and no --all


# ------------------------------------------------------------------------------- real data (default cache)


@pytest.fixture(scope="session")
def real_cache():
    """The real cache (TASKGEN_DATA_DIR or the user cache dir), shared by the session; fetches for real."""
    return dc.data_dir()


def _check_splits(d, sizes):
    assert {s: len(y) for s, (_, y) in d.splits.items()} == sizes
    for x, y in d.splits.values():
        assert x.dtype == np.uint8 and y.dtype == np.int32 and x.shape[1:] == d.image_shape
        assert 0 <= y.min() and y.max() < d.num_classes


def test_real_fashion_mnist(real_cache):
    d = dc.load_images("fashion_mnist")
    _check_splits(d, {"train": 50000, "inner_valid": 5000, "outer_valid": 5000, "test": 10000})
    assert d.image_shape == (28, 28, 1) and d.num_classes == 10 and d.class_names[9] == "Ankle boot"
    assert np.bincount(d.splits["test"][1]).tolist() == [1000] * 10  # the official test set
    again = dc.load_images("fashion_mnist")
    assert all(_digest(*d.splits[s]) == _digest(*again.splits[s]) for s in dc.SPLITS)
    # Splits are disjoint: no train image row is also a validation row at the same index set.
    idx = splits.image_split_indices(store.load_raw("fashion_mnist")[0]["official_test"])
    assert len(np.unique(np.concatenate(list(idx.values())))) == 70000
    small = dc.load_images("fashion_mnist", size=14, splits=("train", "test"))
    assert small.image_shape == (14, 14, 1) and set(small.splits) == {"train", "test"}
    assert np.array_equal(small.splits["train"][1], d.splits["train"][1])
    assert np.array_equal(small.splits["test"][0], dc.resize_images(d.splits["test"][0], 14))


def test_real_mnist(real_cache):
    d = dc.load_images("mnist")
    _check_splits(d, {"train": 6000, "inner_valid": 1000, "outer_valid": 1000, "test": 2000})
    assert "npm" in d.source
    counts = np.bincount(np.concatenate([y for _, y in d.splits.values()]))
    assert counts.sum() == 10000 and counts.min() > 800


def test_real_digits(real_cache):
    d = dc.load_images("digits")
    _check_splits(d, {"train": 1078, "inner_valid": 180, "outer_valid": 180, "test": 359})
    assert d.image_shape == (8, 8, 1) and max(x.max() for x, _ in d.splits.values()) == 255
    assert dc.load_images("digits", size=16).image_shape == (16, 16, 1)


def test_real_shakespeare_labels(real_cache):
    c = dc.load_text("shakespeare")
    assert len(c.documents) == 42 and c.label_names["genre"] == ("comedy", "history", "tragedy", "poetry")
    genre = dict(zip(c.doc_names, (c.label_names["genre"][i] for i in c.labels["genre"])))
    assert genre["twelfth_night"] == "comedy" and genre["hamlet"] == "tragedy"
    assert genre["henry_v"] == "history" and genre["sonnets"] == "poetry"
    assert "If music be the food of love, play on" in c.documents[c.doc_names.index("twelfth_night")]
    cls = dc.text_classification("shakespeare", "genre", "byte", max_len=400)
    hits = [
        (cls.label_names[y], bytes(t[:n].astype(np.uint8)).decode())
        for s in dc.SPLITS
        for t, n, y in zip(*cls.splits[s])
    ]
    music = [g for g, text in hits if "If music be the food of love" in text]
    assert music == ["comedy"]
    assert sum(len(cls.splits[s][2]) for s in dc.SPLITS) > 15000


def test_real_bible_labels(real_cache):
    c = dc.load_text("bible_kjv")
    assert len(c.documents) == 31102 and len(c.label_names["book"]) == 66
    ge = c.doc_names.index("Ge1:1")
    assert c.documents[ge].startswith("In the beginning God created")
    assert c.label_names["testament"][c.labels["testament"][ge]] == "OT"
    wept = c.doc_names.index("John11:35")
    assert c.documents[wept] == "Jesus wept."
    assert c.label_names["testament"][c.labels["testament"][wept]] == "NT"
    assert c.label_names["book_group"][c.labels["book_group"][wept]] == "gospels_acts"
    cls = dc.text_classification("bible_kjv", "testament", "word", 2000, 48)
    assert cls.num_classes == 2 and cls.vocab_size == 2000
    assert sum(c[1] for c in cls.class_counts.values()) == int((c.labels["testament"] == 1).sum())


def test_real_fortunes_labels(real_cache):
    c = dc.load_text("fortunes")
    assert len(c.documents) > 10000 and "startrek" in c.label_names["file"]
    trek = c.label_names["file"].index("startrek")
    assert all(c.labels["file"][i] == trek for i, n in enumerate(c.doc_names) if n.startswith("startrek/"))


def test_real_lm_streams_are_deterministic(real_cache):
    for name in ("shakespeare", "bible_kjv", "fortunes"):
        a, b = dc.lm_stream(name, "byte"), dc.lm_stream(name, "byte")
        assert a.vocab_size == 256 and a.vocab is None
        total = sum(len(a.splits[s]) for s in dc.SPLITS)
        assert 0.75 < len(a.splits["train"]) / total < 0.85
        assert all(np.array_equal(a.splits[s], b.splits[s]) for s in dc.SPLITS)
    w = dc.lm_stream("shakespeare", "word", 4096)
    assert w.vocab_size == 4096 and w.vocab.words[2] == ","  # the most frequent token of Shakespeare
    assert max(int(w.splits[s].max()) for s in dc.SPLITS) < 4096
    works = dc.load_text("shakespeare").documents[:3]
    assert dc.build_word_vocab(works, 50) == dc.build_word_vocab(list(works), 50)


def test_real_cache_verifies(real_cache):
    for info in dc.list_datasets():
        dc.fetch(info.name, progress=False)
        ok, msg = dc.verify(info.name)
        assert ok, msg


def test_cache_files_follow_the_umask_so_a_shared_cache_is_readable(tmp_cache):
    old = os.umask(0o022)
    try:
        cache.write_entry(tmp_cache / "x", "data", _synthetic_images(), {"source": "synthetic"})
    finally:
        os.umask(old)
    files = [p for p in (tmp_cache / "x").rglob("*") if p.is_file()]
    assert files and all(p.stat().st_mode & 0o777 == 0o644 for p in files), \
        {p.name: oct(p.stat().st_mode & 0o777) for p in files}
