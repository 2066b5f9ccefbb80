"""An unusable compilation cache costs speed only: one warning, no error (issue 11, C)."""

import errno
import os
import warnings

import jax
import pytest

from taskgen import jax_cache


@pytest.fixture(autouse=True)
def _keep_jax_config(monkeypatch):
    before = jax.config.jax_compilation_cache_dir
    monkeypatch.setattr(jax_cache, "_enabled", jax_cache._enabled)
    monkeypatch.setattr(jax_cache, "_warned", set())
    yield
    jax.config.update("jax_compilation_cache_dir", before)
    from jax.experimental.compilation_cache import compilation_cache

    compilation_cache.reset_cache()


def _cases(tmp_path):
    regular = tmp_path / "file"
    regular.write_text("x")
    return {"regular-file": (regular, "File exists"),
            "under-a-file": (regular / "sub", "Not a directory")}


@pytest.mark.parametrize("case", ["regular-file", "under-a-file"])
def test_unusable_cache_dir_warns_once_and_runs_without(tmp_path, monkeypatch, case):
    path, reason = _cases(tmp_path)[case]
    monkeypatch.setenv("TASKGEN_JAX_CACHE", str(path))
    before = jax.config.jax_compilation_cache_dir
    with pytest.warns(RuntimeWarning, match=f"^compilation cache {path}: {reason}; running without it"):
        assert jax_cache.enable_compilation_cache() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert jax_cache.enable_compilation_cache() is None  # once per directory
    assert jax.config.jax_compilation_cache_dir == before
    assert float(jax.jit(lambda x: x + 1)(1.0)) == 2.0


def test_read_only_cache_dir_warns(tmp_path, monkeypatch):
    # Tests run as root, where chmod does not stop writes: a read-only filesystem is simulated at the write.
    def read_only(*a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(jax_cache.tempfile, "mkstemp", read_only)
    with pytest.warns(RuntimeWarning, match="Read-only file system; running without it"):
        assert jax_cache.enable_compilation_cache(tmp_path / "ro") is None


def test_usable_cache_dir_is_enabled(tmp_path):
    assert jax_cache.enable_compilation_cache(tmp_path / "ok") == str(tmp_path / "ok")
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "ok")
