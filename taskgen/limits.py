"""The integer ranges every part of the toolkit checks against (plain numbers: no click, no JAX)."""

__all__ = ["INT64_MIN", "INT64_MAX", "SEED_LIMIT"]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
"""Integers that settings and options take fit a signed 64-bit integer."""
SEED_LIMIT = 2**32
"""Seeds lie in ``[0, SEED_LIMIT)`` (a JAX ``PRNGKey`` keeps 32 bits; kept equal to :data:`taskgen.spec.SEED_LIMIT`
by a test)."""
