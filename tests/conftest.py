"""Test-wide settings: CPU only, and the persistent compilation cache (compiles dominate this suite's time)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def pytest_configure(config):
    from taskgen.jax_cache import enable_compilation_cache

    enable_compilation_cache()


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _private_baseline_cache(tmp_path, monkeypatch):
    """Every test gets its own baseline cache, so no test reuses (or leaves) another's baseline runs."""
    monkeypatch.setenv("TASKGEN_BASELINE_CACHE", str(tmp_path / "baselines.arrow"))
