"""Test-wide settings: CPU only, and the persistent compilation cache (compiles dominate this suite's time)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def pytest_configure(config):
    from taskgen.jax_cache import enable_compilation_cache

    enable_compilation_cache()


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _private_baseline_cache(tmp_path, monkeypatch):
    """Every test gets its own baseline cache, yardstick cache and manifest-check records, so no test reuses (or
    leaves) another's runs or records."""
    monkeypatch.setenv("TASKGEN_BASELINE_CACHE", str(tmp_path / "baselines.arrow"))
    monkeypatch.setenv("TASKGEN_YARDSTICK_CACHE", str(tmp_path / "yardstick_cache"))
    monkeypatch.setenv("TASKGEN_MANIFEST_CHECKS", str(tmp_path / "manifest_checks"))
