"""Progress bars for long work: a live bar on a terminal, a sparse line every 30 s (and at the end) elsewhere."""

from __future__ import annotations

import sys

from tqdm import tqdm

__all__ = ["progress_bar", "SPARSE_INTERVAL_S"]

SPARSE_INTERVAL_S = 30.0
"""Seconds between progress lines when stderr is not a terminal (a log file, CI)."""


def progress_bar(total: int, desc: str, unit: str = "it", enabled: bool = True, file=None, initial: int = 0) -> tqdm:
    """A tqdm bar on ``file`` (stderr): live on a terminal, one line per ``SPARSE_INTERVAL_S`` otherwise.

    Args:
      total: the number of items.
      desc: what is being done, shown first on each line.
      unit: the name of one item.
      enabled: False gives a bar that prints nothing.
      file: the stream (stderr by default).
      initial: items already done (a resumed job).

    Returns:
      The bar; call ``update`` and ``close`` (or use it as a context manager); pass ``refresh=False`` to
      ``set_description`` / ``set_postfix``, so that only ``update`` prints (sparsely off a terminal).
    """
    file = file or sys.stderr
    tty = bool(getattr(file, "isatty", lambda: False)())
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=file, disable=not enabled, dynamic_ncols=tty,
                mininterval=0.1 if tty else SPARSE_INTERVAL_S, maxinterval=SPARSE_INTERVAL_S * 2,
                ascii=not tty)
