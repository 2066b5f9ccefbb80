"""The data cache as optional machinery (issue 11, C): a read-only cache costs the caching only, a data dir that
is a regular file is one clear error, and `data verify` checks derived entries too."""

import contextlib
import errno
import os
import re

import numpy as np
import pytest
from click.testing import CliRunner

from datasets_cache import cache, sources, store
from datasets_cache.cli import data as data_cli
from datasets_cache.errors import DataDirError
from tests.test_datasets_cache import FakeSource, _synthetic_images


@pytest.fixture
def fake_digits(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKGEN_DATA_DIR", str(tmp_path / "cache"))
    fake = FakeSource(_synthetic_images())
    monkeypatch.setattr(sources, "sources_for", lambda name: [sources.Source("test", "synthetic", fake.fetch)])
    monkeypatch.setattr(store, "_IN_MEMORY", {})
    return fake


def _read_only(monkeypatch):
    """Writes into the cache fail as on a read-only filesystem (tests run as root, where chmod does not stop
    writes, so the failure is injected at the cache's one writer)."""
    @contextlib.contextmanager
    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        yield  # pragma: no cover

    monkeypatch.setattr(cache, "_atomic_target", refuse)


def test_read_only_cache_fetches_into_memory_once(fake_digits, monkeypatch):
    _read_only(monkeypatch)
    directory = cache.dataset_path("digits")
    with pytest.warns(UserWarning, match=re.escape(
            f"could not cache dataset 'digits' in {directory} (Read-only file system); using it from memory for "
            "this run (set TASKGEN_DATA_DIR to a writable directory to keep it)")):
        arrays, meta = store.load_raw("digits")
    np.testing.assert_array_equal(arrays["images"], fake_digits.arrays["images"])
    assert len(meta["sha256"]) == 64
    again, _ = store.load_raw("digits")
    assert again is arrays and fake_digits.calls == 1
    assert store.raw_meta("digits")["sha256"] == meta["sha256"]
    assert not directory.exists()


def test_read_only_cache_with_a_corrupt_entry_goes_on(fake_digits, monkeypatch):
    store.load_raw("digits")
    npz, _ = cache.entry_paths(cache.dataset_path("digits"), store.RAW)
    data = bytearray(npz.read_bytes())
    data[100] ^= 0xFF
    npz.write_bytes(bytes(data))
    _read_only(monkeypatch)
    with pytest.warns(UserWarning) as rec:
        arrays, _ = store.load_raw("digits")
    messages = [str(w.message) for w in rec]
    assert any("is corrupt" in m and "fails its sha256 check" in m for m in messages), messages
    assert any("could not cache dataset 'digits'" in m for m in messages), messages
    np.testing.assert_array_equal(arrays["labels"], fake_digits.arrays["labels"])


@pytest.mark.parametrize("under", [False, True], ids=["regular-file", "under-a-file"])
def test_data_dir_that_is_a_regular_file_is_one_clear_error(tmp_path, monkeypatch, under):
    regular = tmp_path / "afile"
    regular.write_text("x")
    setting = regular / "cache" if under else regular
    monkeypatch.setenv("TASKGEN_DATA_DIR", str(setting))
    what = f"is under {regular}, a regular file" if under else "is a regular file"
    with pytest.raises(DataDirError) as err:
        cache.dataset_path("digits")
    assert str(err.value) == (f"TASKGEN_DATA_DIR={setting}: {what}, not a directory; point TASKGEN_DATA_DIR at a "
                              "directory (or unset it for the default cache)")


def test_verify_checks_derived_entries(fake_digits):
    store.load_raw("digits")
    derived = cache.dataset_path("digits") / store.DERIVED_DIR
    cache.write_entry(derived, "resize-0123456789abcdef", {"x": np.arange(6, dtype=np.float32)}, {"kind": "resize"})
    ok, msg = store.verify("digits")
    assert ok and msg.endswith("; 1 derived entries)")
    npz, _ = cache.entry_paths(derived, "resize-0123456789abcdef")
    data = bytearray(npz.read_bytes())
    data[-30] ^= 0xFF
    npz.write_bytes(bytes(data))
    assert store.verify("digits") == (
        False, f"digits: CORRUPT derived entry resize-0123456789abcdef: {npz} fails its sha256 check")
    result = CliRunner().invoke(data_cli, ["verify", "digits"])
    assert result.exit_code == 1 and "CORRUPT derived entry resize-0123456789abcdef" in result.output
