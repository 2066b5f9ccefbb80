"""The ``taskgen`` command line of the whole toolkit: taskgen's commands and the learned-optimizer groups.

It sits above every package it serves (``datasets_cache`` ← ``families`` ← ``taskgen`` ← ``lopt_trainer`` ←
``taskgen_cli``) and names their command modules; nothing below it names a package above.
"""

from taskgen_cli.main import cli, main

__all__ = ["cli", "main"]
