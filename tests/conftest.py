"""Test-wide settings: CPU only, and the persistent compilation cache (compiles dominate this suite's time)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def pytest_configure(config):
    from lopt_trainer.jax_cache import enable_compilation_cache

    enable_compilation_cache()
