"""The TaskSet ``opt_list``: 1000 ordered NAdamW configurations, shipped as package data.

The list (``lopt_trainer/data/opt_list.json``, Apache-2.0, Copyright Google LLC; see the README next to it) is
ordered so that its first N entries are a good set of N trials for an unknown task. The optimizer they
configure is :func:`lopt_trainer.inner.baselines.nadamw`.
"""

from __future__ import annotations

import functools
import json
import pathlib

OPT_LIST_PATH = pathlib.Path(__file__).resolve().parent.parent / "data" / "opt_list.json"
"""Location of the shipped list."""

OPT_LIST_KEYS = (
    "learning_rate",
    "beta1",
    "beta2",
    "epsilon",
    "use_nesterov",
    "adamw_weight_decay",
    "l2_weight_decay",
    "warmup_fraction",
    "min_learning_rate_mult",
    "constant_fraction",
)
"""The hyperparameters of one entry (the keyword arguments of ``baselines.nadamw`` minus ``total_steps``)."""


@functools.lru_cache(maxsize=1)
def _load() -> tuple:
    with open(OPT_LIST_PATH, encoding="utf-8") as f:
        entries = json.load(f)
    for i, entry in enumerate(entries):
        if set(entry) != set(OPT_LIST_KEYS):
            raise ValueError(f"{OPT_LIST_PATH}: entry {i} has keys {sorted(entry)}, expected {sorted(OPT_LIST_KEYS)}")
    return tuple(entries)


def opt_list_size() -> int:
    """Number of configurations in the shipped list (1000)."""
    return len(_load())


def opt_list_trials(n: int) -> list[dict]:
    """The first ``n`` configurations, in order, as fresh dicts (``use_nesterov`` a bool, the rest floats).

    Raises ``ValueError`` if ``n`` is negative or larger than the list.
    """
    entries = _load()
    if not 0 <= n <= len(entries):
        raise ValueError(f"opt_list has {len(entries)} configurations; asked for the first {n}")
    return [dict(e) for e in entries[:n]]
