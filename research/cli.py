"""The lab's command line, run from a checkout as ``python -m research <command>`` (nothing here is installed).

    python -m research ship RUN|THETA.npz [--provenance FILE.json]     (make ship)
    python -m research grad-quality [--theta T ...] [--estimators pes,backprop] [--groups 16,8] [--slots 2,4]
    python -m research implicit-reg --theta THETA.npz --steps 1000 --out runs/implicit_reg
    python -m research self-train --theta THETA.npz --steps 60 --out runs/self_training [--adam-lr 3e-4 --adam-lr 1e-3]
    python -m research report RUN

Each command imports its machinery in its body, so that ``--help`` answers without importing JAX. Every command
runs inside the toolkit's error boundary (:class:`taskgen.cli.LazyGroup`): an error a user can act on is one
``Error: …`` line with exit status 1 (2 for usage errors); ``--debug`` (or ``TASKGEN_DEBUG=1``) shows the
traceback. Every ``--theta`` takes the one θ grammar of ``taskgen`` (:data:`lopt_trainer.app.cli.THETA`), and a
command that writes a folder records its command line in ``OUT/command.json`` and holds the folder's lock.
"""

from __future__ import annotations

import json
import os
import sys

import click

from lopt_trainer.app.cli import int_list, theta_option  # click types and options, no JAX
from lopt_trainer.theta.names import theta_label  # plain names, no JAX
from taskgen.cli import LazyGroup
from taskgen.cli_types import FINITE_FLOAT, POSITIVE_FLOAT, POSITIVE_INT64, SEED  # click types, no JAX
from taskgen.errors import TOOLKIT_PACKAGES

__all__ = ["ResearchGroup", "cli", "grad_quality_cmd", "implicit_reg_cmd", "main", "report_cmd", "self_train_cmd",
           "ship_cmd"]


class ResearchGroup(LazyGroup):
    """The lab's click group: the toolkit's error boundary, with this folder's errors counted as its own too."""

    lazy_commands = {}
    own_packages = (*TOOLKIT_PACKAGES, "lopt_trainer", "taskgen_cli", "research")


def _set_debug(ctx, _param, value):
    ctx.meta["taskgen.debug"] = bool(value) or os.environ.get("TASKGEN_DEBUG", "") not in ("", "0")
    return value


@click.group("research", cls=ResearchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, is_eager=True, expose_value=False, callback=_set_debug,
              help="Show the full traceback of an error (also: TASKGEN_DEBUG=1).")
def cli():
    """The lab: the release gate, the paper's experiments, the gradient-quality diagnostic and the HTML report."""


def _points(ctx, param, values) -> tuple:
    """Click callback: each ``"x,y"`` → ``(x, y)``, each coordinate a finite float."""
    out = []
    for text in values:
        parts = text.split(",")
        if len(parts) != 2:
            raise click.BadParameter(f"each --start must be 'x,y', got {text!r}", ctx, param)
        out.append(tuple(FINITE_FLOAT.convert(v.strip(), param, ctx) for v in parts))
    return tuple(out)


@cli.command("ship")
@click.argument("source", metavar="RUN|THETA.npz", type=click.Path(exists=True))
@click.option("--provenance", "provenance_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="With a THETA.npz: a JSON saying where the θ comes from (fields theta, config, steps_run; "
              "it becomes the shipped recipe).")
@click.option("--no-progress", is_flag=True)
def ship_cmd(source, provenance_file, no_progress):
    """Replace the package's shipped θ by RUN's panel-best θ (or by THETA.npz, with --provenance) only if, on the
    yardstick's test set, it is ahead of the hand-set θ in mean normalized loss (95% interval above 0), beats
    Global AdamLR on >= 60% of the tasks and per-task AdamLR@14 on >= 25%, and never diverges; then write
    shipped_test.json beside it. Otherwise exit 1 naming what fell short, and write nothing."""
    from pathlib import Path

    from research.ship import ship, ship_file  # deferred: `--help` must not import JAX

    if Path(source).is_dir():
        if provenance_file is not None:
            raise click.BadParameter("a run folder carries its own recipe; --provenance is for a θ file",
                                     param_hint="--provenance")
        click.echo(f"shipped {ship(source, progress=not no_progress)}")
        return
    if provenance_file is None:
        raise click.BadParameter(f"{source!r} is a θ file: say where it comes from with --provenance FILE.json",
                                 param_hint="--provenance")
    click.echo(f"shipped {ship_file(source, provenance_file, progress=not no_progress)}")


@cli.command("grad-quality")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Meta-train settings (.json/.toml; default: the pretraining recipe).")
@theta_option("--theta", "thetas", multiple=True, default=("handset",), show_default=True,
              help="Repeat to measure at several.")
@click.option("--estimators", default="pes", show_default=True, help="Comma-separated: pes, es, backprop, hybrid.")
@click.option("--groups", default="16", show_default=True, callback=int_list,
              help="Estimators per outer step (comma-separated).")
@click.option("--slots", default="2", show_default=True, callback=int_list,
              help="Slots (antithetic pairs) per estimator (comma-separated).")
@click.option("-k", "k", type=click.IntRange(min=2), default=4, show_default=True, help="Independent estimates.")
@click.option("--burn-in", type=click.IntRange(min=0), default=2, show_default=True,
              help="Outer steps the problems advance (θ fixed) before the measured step.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def grad_quality_cmd(config_file, thetas, estimators, groups, slots, k, burn_in, as_json):
    """How much signal one outer step's meta-gradient carries: cosine similarity of K independent estimates and
    signal-to-noise ratio per block of θ, by estimator, number of estimators and slots."""
    # deferred: see ship_cmd
    from lopt_trainer.common.run_files import clean_json
    from lopt_trainer.meta.config import MetaTrainConfig, load_config
    from lopt_trainer.meta.plan import check_family_draw
    from lopt_trainer.meta.trainer import load_specs_for
    from lopt_trainer.theta.load import load_theta
    from lopt_trainer.theta.shipped import data_path
    from research.grad_quality import format_row, grid_configs, run_grid

    try:
        base = load_config(config_file or data_path("pretrain_config.json"))
        grid = {"estimators": [e.strip() for e in estimators.split(",") if e.strip()],
                "groups": groups, "slots": slots}
        for config in grid_configs(base, **grid):  # every row's settings checked before any work
            MetaTrainConfig.from_dict(config.to_dict())
    except (TypeError, ValueError) as e:
        raise click.UsageError(str(e)) from None
    specs = load_specs_for(base.split().tasks)[0]
    try:
        for config in grid_configs(base, **grid):  # a stratified draw needs as many estimators as families
            check_family_draw(config.split().plan, specs)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    loaded = {name: load_theta(name) for name in thetas}
    header = []

    def echo(row):
        if not as_json:
            if not header:
                click.echo(format_row(row, header=True))
                header.append(True)
            click.echo(format_row(row))

    rows = run_grid(base, loaded, specs, k=k, burn_in=burn_in, echo=echo, **grid)
    if as_json:
        click.echo(json.dumps(clean_json(rows), sort_keys=True))


@cli.command("implicit-reg")
@theta_option()
@click.option("--steps", type=POSITIVE_INT64, default=1000, show_default=True)
@click.option("--adam-lr", type=POSITIVE_FLOAT, default=0.05, show_default=True)
@click.option("--start", "starts", multiple=True, callback=_points,
              help="Start point 'x,y' (repeat; default: 6 fixed points).")
@click.option("--valid-every", type=POSITIVE_INT64, default=10, show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
def implicit_reg_cmd(theta, steps, adam_lr, starts, valid_every, out_dir):
    """Trajectories of Adam and the learned optimizer on (x − y)²; final distances to the origin."""
    # deferred: see ship_cmd
    from lopt_trainer.common.folder_lock import folder_lock
    from lopt_trainer.common.run_files import write_command
    from lopt_trainer.theta.load import load_theta
    from research.implicit_reg import DEFAULT_STARTS, run_implicit_reg

    with folder_lock(out_dir):
        write_command(out_dir)
        r = run_implicit_reg(load_theta(theta), out_dir, starts=starts or DEFAULT_STARTS, steps=steps,
                             adam_lr=adam_lr, valid_every=valid_every, theta_path=theta_label(theta))
    click.echo(f"mean final distance to the origin: Adam {r['adam']['mean_final_norm']:.4g}, "
               f"learned {r['lopt']['mean_final_norm']:.4g} (projection onto the line: "
               f"{r['mean_projection_norm']:.4g})")
    click.echo(f"wrote {out_dir}/implicit_reg.json, implicit_reg.png")


@cli.command("self-train")
@theta_option(help="It is the outer optimizer of the first run (outer_opt='lopt:THETA').")
@click.option("--steps", type=POSITIVE_INT64, default=None, help="Outer steps per run (default 60).")
@click.option("--adam-lr", "adam_lrs", multiple=True, type=POSITIVE_FLOAT, help="Adam outer learning rates "
              "(repeat; default 3e-4 and 1e-3).")
@click.option("--suite", type=click.Path(exists=True, dir_okay=False))
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--set", "sets", multiple=True, help="key=value: any meta-train setting (e.g. truncation=20, "
              "filters='{\"family\": [\"twod\"], \"split\": [\"meta_train\"]}').")
@click.option("--seed", type=SEED, default=0, show_default=True, help="The first seed.")
@click.option("--seeds", "n_seeds", type=click.IntRange(1, 1000), default=3, show_default=True,
              help="Seeds (SEED, SEED+1, ...): three runs each, so the time grows with it (the default setting: "
              "1.5-2.5 minutes per run on 2 CPU cores once the panel's AdamLR baselines are cached).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--no-progress", is_flag=True)
def self_train_cmd(theta, steps, adam_lrs, suite, manifest, sets, seed, n_seeds, out_dir, no_progress):
    """Meta-train a fresh learned optimizer with θ as outer optimizer, and with Adam at two learning rates, for each
    seed; judge the fresh θ on a quality panel (16 held-out quadratics by default; --set panel_every=0: meta-loss
    only)."""
    # deferred: see ship_cmd
    from lopt_trainer.common.folder_lock import folder_lock
    from lopt_trainer.common.run_files import write_command
    from lopt_trainer.meta.config import parse_sets
    from research.self_training import DEFAULT_ADAM_LRS, base_config, run_self_training

    try:
        overrides = parse_sets(sets)
        base_config(overrides, steps, seed)  # settings checked before any work, as usage errors
        base_config(overrides, steps, seed + n_seeds - 1)  # the last seed too
    except (TypeError, ValueError) as e:
        raise click.UsageError(str(e)) from None
    with folder_lock(out_dir):
        write_command(out_dir)
        s = run_self_training(theta, out_dir, adam_lrs=adam_lrs or DEFAULT_ADAM_LRS, steps=steps,
                              overrides=overrides, seeds=range(seed, seed + n_seeds), suite=suite,
                              manifest=manifest, progress=not no_progress)
    if s.get("interrupted"):
        click.echo("interrupted: the runs so far are checkpointed; rerun the same command to continue", err=True)
        sys.exit(130)
    for r in s["runs"]:
        line = f"seed {r['seed']} {r['name']:<14} meta-loss {r['first_meta_loss']:.4g} -> {r['final_meta_loss']:.4g}"
        if r.get("gain"):
            g, first, last = r["gain"], r["panel"][0], r["panel"][-1]
            when = (f"measurable from step {r['budget_step']}" if r["budget_step"] is not None
                    else f"not measurable within {last['step']} steps")
            line += (f"; panel {first['score']:+.3f} -> {last['score']:+.3f} (step {last['step']}), gain "
                     f"{g['mean']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}], {when}")
        click.echo(line)
    if s.get("pooled"):
        p = s["pooled"]
        click.echo(f"learned − best Adam (final panel score, {p['seeds']} seeds pooled): {p['mean']:+.3f} "
                   f"[{p['low']:+.3f}, {p['high']:+.3f}]; learned ahead on {p['seeds_won']} of {p['seeds']} seeds")
    click.echo(f"wrote {out_dir}/self_training.json, self_training.png")


@cli.command("report")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="HTML file to write (default: DIRECTORY/report.html).")
def report_cmd(directory, out):
    """Write DIRECTORY/report.html: meta-training curves, evaluation box plots and tables, the 2-D trajectories,
    the self-training curves and the commands that produced them (parts not found are marked "not run")."""
    from research.report import find_parts, write_report  # deferred: see ship_cmd

    path = write_report(directory, out)
    parts = find_parts(directory)
    found = ", ".join(f"{k}: {len(v)}" for k, v in parts.items())
    click.echo(f"wrote {path} ({found})")


def main():
    """Entry point of ``python -m research``."""
    cli(prog_name="python -m research")
