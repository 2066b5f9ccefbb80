"""Flax modules of the built-in families, imported only when a task is built (see :mod:`families._lazy`)."""
