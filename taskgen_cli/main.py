"""The toolkit's root command group: :mod:`taskgen.cli`'s commands plus the learned-optimizer groups of
:mod:`lopt_trainer.app.cli`, each imported only when its command runs (``taskgen --help`` imports no JAX)."""

from __future__ import annotations

from taskgen import cli as taskgen_cli
from taskgen.errors import TOOLKIT_PACKAGES

__all__ = ["LOPT_COMMANDS", "ToolkitGroup", "cli", "main"]

LOPT_COMMANDS = {
    "train": ("lopt_trainer.app.cli:train",
              "Train TASK_ID with a baseline optimizer or the learned optimizer; save and print its loss curves."),
    "lopt": ("lopt_trainer.app.cli:lopt", "Meta-train learned optimizers, judge θ and look at the runs."),
}
"""The learned-optimizer commands: name -> (``module:attribute``, one-line help)."""


class ToolkitGroup(taskgen_cli.LazyGroup):
    """taskgen's lazy group with the learned-optimizer commands, whose errors are the toolkit's own too."""

    lazy_commands = {**taskgen_cli.LAZY_COMMANDS, **LOPT_COMMANDS}
    own_packages = (*TOOLKIT_PACKAGES, "lopt_trainer", "taskgen_cli")


_base = taskgen_cli.cli
cli = ToolkitGroup(name="taskgen", commands=dict(_base.commands), callback=_base.callback, params=_base.params,
                   help=_base.help, context_settings=_base.context_settings)
"""The root group of the ``taskgen`` console script."""


def main():
    """Entry point of the ``taskgen`` console script."""
    cli(prog_name="taskgen")
