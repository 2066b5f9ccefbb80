"""Seeded sampling primitives for configs (TaskSet's log_int, linear_int, log_float, weighted choices).

Specs must be byte-identical across machines and library versions, so sampling uses only Python's
``random.Random(seed).random()`` — whose stream the standard library guarantees stable for an integer seed — and
builds every distribution on top of it. Sampled floats are rounded to 6 significant digits, so a one-ulp
difference between platforms' ``log``/``exp`` cannot change a spec's bytes.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any


def derive_seed(*parts: Any) -> int:
    """A 31-bit seed from any printable parts (stable: sha256 of their ``repr`` joined by ``/``)."""
    digest = hashlib.sha256("/".join(repr(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def round_sig(x: float, digits: int = 6) -> float:
    """``x`` rounded to ``digits`` significant digits (0 stays 0)."""
    if x == 0 or not math.isfinite(x):
        return float(x)
    return float(f"{x:.{digits - 1}e}")


class SpecRNG:
    """A deterministic stream of config draws from one integer seed."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self._random = random.Random(self.seed)

    def uniform(self, lo: float = 0.0, hi: float = 1.0) -> float:
        """U[lo, hi), rounded to 6 significant digits."""
        return round_sig(lo + (hi - lo) * self._random.random())

    def log_float(self, lo: float, hi: float) -> float:
        """exp(U[log lo, log hi]), rounded to 6 significant digits and clipped into [lo, hi]."""
        x = math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * self._random.random())
        return min(max(round_sig(x), lo), hi)

    def log_int(self, lo: int, hi: int) -> int:
        """round(exp(U[log lo, log hi])), clipped into [lo, hi]."""
        x = math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * self._random.random())
        return int(min(max(round(x), lo), hi))

    def linear_int(self, lo: int, hi: int) -> int:
        """An integer uniform on [lo, hi] (inclusive)."""
        return lo + min(int(self._random.random() * (hi - lo + 1)), hi - lo)

    def bool(self, p: float = 0.5) -> bool:
        """True with probability ``p``."""
        return self._random.random() < p

    def choice(self, options: Sequence) -> Any:
        """One of ``options``, uniformly."""
        return options[self.linear_int(0, len(options) - 1)]

    def weighted(self, weights: Mapping[Any, float]) -> Any:
        """A key of ``weights`` drawn with probability proportional to its weight (iteration order matters)."""
        total = sum(weights.values())
        u = self._random.random() * total
        acc = 0.0
        for key, w in weights.items():
            acc += w
            if u < acc:
                return key
        return key

    def normal(self, mean: float = 0.0, std: float = 1.0) -> float:
        """N(mean, std²) by Box-Muller, rounded to 6 significant digits."""
        u1 = 1.0 - self._random.random()
        u2 = self._random.random()
        return round_sig(mean + std * math.sqrt(-2.0 * math.log(u1)) * math.cos(2 * math.pi * u2))
