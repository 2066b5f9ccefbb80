"""``taskgen report DIR``: write the HTML report of a run or evaluation folder (see :mod:`lopt_trainer.report`)."""

from __future__ import annotations

import click


@click.command("report")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="HTML file to write (default: DIRECTORY/report.html).")
def report(directory, out):
    """Write DIRECTORY/report.html: meta-training curves, evaluation box plots and tables, the 2-D trajectories,
    the self-training curves and the commands that produced them (parts not found are marked "not run")."""
    from lopt_trainer.report import find_parts, write_report

    path = write_report(directory, out)
    parts = find_parts(directory)
    found = ", ".join(f"{k}: {len(v)}" for k, v in parts.items())
    click.echo(f"wrote {path} ({found})")
