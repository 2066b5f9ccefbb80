"""Click parameter types for numbers with their real ranges, shared by every ``taskgen`` command.

A numeric option says what it accepts, and refuses everything else as a usage error (exit status 2) naming the
option, before any work is done:

* :class:`FiniteFloat` — a finite float (``nan``, ``inf`` and literals that overflow a float, such as ``1e400``,
  are refused), optionally within bounds (open or closed). Ready-made: :data:`FINITE_FLOAT`,
  :data:`POSITIVE_FLOAT` (learning rates, scales: ``x > 0``), :data:`NON_NEGATIVE_FLOAT`, :data:`UNIT_INTERVAL`
  (fractions and probabilities: ``0 <= x <= 1``).
* :class:`Int64` — an integer that fits a signed 64-bit integer (what Arrow columns, NumPy and JAX hold),
  optionally within bounds. Ready-made: :data:`INT64`, :data:`NON_NEGATIVE_INT64` (limits, counts that may be 0),
  :data:`POSITIVE_INT64` (step and trial counts), :data:`SEED` (``0 <= seed < 2**32``: what a JAX ``PRNGKey``
  holds without aliasing, the range of spec seeds).

Both subclass click's ``FloatRange`` / ``IntRange``, so ``--help`` shows the bounds the usual way. A rejected value
is echoed cut to a few dozen characters (:func:`families.errors.short_repr`). Use them in any package's CLI::

    from taskgen.cli_types import POSITIVE_FLOAT, POSITIVE_INT64, SEED, Int64

    @click.option("--lr", type=POSITIVE_FLOAT, default=1e-3)
    @click.option("--steps", type=POSITIVE_INT64, default=1000)
    @click.option("--max-params", type=Int64(min=-1), default=-1)   # -1: no limit

This module imports only the standard library, click and :mod:`families.errors` (the CLI stays lazy).
"""

from __future__ import annotations

import math

import click

from families.errors import short_repr

from taskgen.limits import INT64_MAX, INT64_MIN, SEED_LIMIT  # noqa: F401  (the ranges the types check)

__all__ = ["FiniteFloat", "Int64", "FINITE_FLOAT", "POSITIVE_FLOAT", "NON_NEGATIVE_FLOAT", "UNIT_INTERVAL",
           "INT64", "NON_NEGATIVE_INT64", "POSITIVE_INT64", "SEED", "INT64_MIN", "INT64_MAX", "SEED_LIMIT"]


class FiniteFloat(click.FloatRange):
    """A finite float, optionally in ``[min, max]`` (``min_open`` / ``max_open`` exclude an end).

    ``nan``, ``inf``, ``-inf`` and literals whose value overflows a float (``1e400``) are refused, as is anything
    Python's ``float()`` does not read."""

    name = "float"

    def __init__(self, min: float | None = None, max: float | None = None, min_open: bool = False,
                 max_open: bool = False):
        super().__init__(min=min, max=max, min_open=min_open, max_open=max_open, clamp=False)

    def convert(self, value, param, ctx):
        """The float ``value`` names, or a usage error naming the option."""
        if isinstance(value, bool):
            self.fail(f"{short_repr(value)} is not a number.", param, ctx)
        if isinstance(value, (int, float)):
            number = value
        else:
            try:
                number = float(str(value).strip())
            except (ValueError, OverflowError):
                self.fail(f"{short_repr(value)} is not a number.", param, ctx)
        try:
            number = float(number)
        except OverflowError:  # an int too large for a float
            self.fail(f"{short_repr(value)} is too large for a float.", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{short_repr(value)} is not a finite number (NaN and infinities are refused; a literal "
                      "beyond ±1.8e308 overflows to infinity).", param, ctx)
        return super().convert(number, param, ctx)

    def _describe_range(self) -> str:
        """The range shown in ``--help`` (``finite`` when unbounded)."""
        return "finite" if self.min is None and self.max is None else super()._describe_range()


class Int64(click.IntRange):
    """An integer that fits a signed 64-bit integer, optionally in ``[min, max]`` (``min_open`` / ``max_open``
    exclude an end). Refuses non-integers (``1.5``, ``1e3``), booleans and integers outside
    ``[-2**63, 2**63 - 1]``."""

    name = "integer"

    def __init__(self, min: int | None = None, max: int | None = None, min_open: bool = False,
                 max_open: bool = False):
        for bound in (min, max):
            if bound is not None and not INT64_MIN <= bound <= INT64_MAX:
                raise ValueError(f"bound {bound} does not fit a 64-bit integer")
        super().__init__(min=min, max=max, min_open=min_open, max_open=max_open, clamp=False)

    def convert(self, value, param, ctx):
        """The integer ``value`` names, or a usage error naming the option."""
        if isinstance(value, bool) or isinstance(value, float):
            self.fail(f"{short_repr(value)} is not an integer.", param, ctx)
        if isinstance(value, int):
            number = value
        else:
            text = str(value).strip()
            try:
                number = int(text)
            except ValueError:
                if text.lstrip("+-").isdigit():  # digits beyond Python's 4300-digit conversion limit
                    self.fail(f"{short_repr(value)} does not fit a 64-bit integer (allowed: {self._range_text()}).",
                              param, ctx)
                self.fail(f"{short_repr(value)} is not an integer.", param, ctx)
        if not INT64_MIN <= number <= INT64_MAX:
            self.fail(f"{short_repr(number)} does not fit a 64-bit integer (allowed: "
                      f"{self._range_text()}).", param, ctx)
        return super().convert(number, param, ctx)

    def _describe_range(self) -> str:
        """The range shown in ``--help`` (``64-bit`` when unbounded)."""
        return "64-bit" if self.min is None and self.max is None else super()._describe_range()

    def _range_text(self) -> str:
        lo = INT64_MIN if self.min is None else self.min
        hi = INT64_MAX if self.max is None else self.max
        return f"{lo}{'<' if self.min_open else '<='}x{'<' if self.max_open else '<='}{hi}"


FINITE_FLOAT = FiniteFloat()
"""Any finite float."""
POSITIVE_FLOAT = FiniteFloat(min=0, min_open=True)
"""A finite float ``> 0`` (learning rates, scales)."""
NON_NEGATIVE_FLOAT = FiniteFloat(min=0)
"""A finite float ``>= 0``."""
UNIT_INTERVAL = FiniteFloat(min=0, max=1)
"""A fraction or probability: ``0 <= x <= 1``."""
INT64 = Int64()
"""Any integer that fits int64."""
NON_NEGATIVE_INT64 = Int64(min=0)
"""An integer ``0 <= x < 2**63`` (limits, counts that may be zero)."""
POSITIVE_INT64 = Int64(min=1)
"""An integer ``1 <= x < 2**63`` (steps, trials, periods)."""
SEED = Int64(min=0, max=SEED_LIMIT - 1)
"""A seed: ``0 <= seed < 2**32`` (what a JAX ``PRNGKey`` holds without aliasing; the range of spec seeds)."""
