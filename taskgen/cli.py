"""The ``taskgen`` command line: families, sample, export, list, show, build — plus ``data``, ``train``,
``lopt`` and ``report`` from the other packages, loaded only when used."""

from __future__ import annotations

import functools
import importlib
import json
import sys

import click

from families.base import ConfigError
from taskgen import suite as suite_mod
from taskgen.registry import BUILTIN_FAMILIES, UnknownFamilyError, default_registry

# Subcommands living in other packages, imported on first use so `taskgen --help` stays fast.
LAZY_COMMANDS = {
    "data": "datasets_cache.cli:data",
    "train": "lopt_trainer.train_cli:train",
    "lopt": "lopt_trainer.meta.cli:lopt",
    "report": "lopt_trainer.report_cli:report",
}


class LazyGroup(click.Group):
    """A click group whose listed subcommands are imported when invoked (or when help lists them)."""

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx, name):
        if name in LAZY_COMMANDS and name not in self.commands:
            module, _, attr = LAZY_COMMANDS[name].partition(":")
            try:
                return getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as e:
                return _unavailable_command(name, str(e))
        return super().get_command(ctx, name)


def _unavailable_command(name: str, reason: str) -> click.Command:
    """A stand-in for a subcommand whose package cannot be imported: visible in help, says why when run."""

    def fail():
        raise click.ClickException(f"`taskgen {name}` is unavailable in this install: {reason}")

    return click.Command(name, callback=fail, help=f"(unavailable: {reason})")


def friendly_errors(fn):
    """Turn the toolkit's input errors into click errors (message on stderr, exit status 1)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ConfigError, UnknownFamilyError, KeyError, FileNotFoundError, ValueError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            raise click.ClickException(str(msg)) from None

    return wrapper


def _echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="taskgen", prog_name="taskgen", message="%(prog)s %(version)s")
def cli():
    """Sample, freeze, query and build training tasks; train and meta-train optimizers on them."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print names, versions and config spaces as JSON.")
@friendly_errors
def families(as_json):
    """List the registered task families with their versions and config spaces."""
    from families.space import describe_space

    registry = default_registry()
    rows = []
    for name in registry.names():
        family = registry.get(name)
        rows.append({"name": name, "version": family.version, "config_space": describe_space(family.config_space())})
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        fields = ", ".join(row["config_space"].get("fields", {}))
        click.echo(f"{row['name']:<26} v{row['version']}  fields: {fields}")


def _split_families(value: str) -> list[str] | None:
    if value in ("", "default"):
        return None
    if value == "all":
        return default_registry().names()
    return [v.strip() for v in value.split(",") if v.strip()]


@cli.command()
@click.option("--families", "families_", default="default", show_default=True,
              help="Comma-separated family names; 'default' (the 12 built-ins) or 'all' (plus plugins and "
                   "registered families).")
@click.option("--per-family", default=suite_mod.DEFAULT_PER_FAMILY, show_default=True, type=click.IntRange(0),
              help="Specs sampled per family.")
@click.option("--seed", default=suite_mod.DEFAULT_SEED, show_default=True, type=click.IntRange(0),
              help="Suite seed; every spec seed derives from it.")
@click.option("--holdout-fraction", default=suite_mod.DEFAULT_HOLDOUT_FRACTION, show_default=True,
              type=click.FloatRange(0, 1), help="Fraction of specs (by content hash) put in meta_test.")
@click.option("--hold-out-variant", "held_out", multiple=True,
              help="A family variant (e.g. twod/beale) put entirely in meta_test. Repeatable; "
                   f"default: {', '.join(suite_mod.DEFAULT_HELD_OUT_VARIANTS)}.")
@click.option("--no-default-holdouts", is_flag=True, help="Hold out no variant unless --hold-out-variant names it.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Spec file to write (.jsonl).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@friendly_errors
def sample(families_, per_family, seed, holdout_fraction, held_out, no_default_holdouts, output, as_json):
    """Sample a suite of task specs and write it atomically as JSON Lines."""
    from tqdm import tqdm

    from taskgen.specfile import write_specs

    names = _split_families(families_)
    registry = default_registry()
    for name in names or []:
        registry.get(name)
    held = tuple(held_out) if (held_out or no_default_holdouts) else suite_mod.DEFAULT_HELD_OUT_VARIANTS
    total = per_family * len(names or BUILTIN_FAMILIES)
    with tqdm(total=total, desc="sampling", unit="spec", disable=as_json or not sys.stderr.isatty()) as bar:
        specs = suite_mod.generate_suite(names, per_family, seed, holdout_fraction, held,
                                         progress=lambda n: bar.update(n - bar.n))
    write_specs(output, specs)
    counts = {}
    for s in specs:
        counts.setdefault(s.family, {"meta_train": 0, "meta_test": 0})[s.split] += 1
    if as_json:
        _echo_json({"output": output, "specs": len(specs), "per_family": counts})
    else:
        click.echo(f"wrote {len(specs)} specs to {output}")
        for name, c in counts.items():
            click.echo(f"  {name:<26} meta_train {c['meta_train']:>5}  meta_test {c['meta_test']:>5}")


@cli.command()
@click.argument("suite", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Manifest file to write.")
@click.option("--format", "fmt", type=click.Choice(["arrow", "parquet"]), default="arrow", show_default=True)
@friendly_errors
def export(suite, output, fmt):
    """Export a spec file as an Arrow (IPC file) or Parquet manifest, one row per task."""
    from taskgen.manifest import write_manifest
    from taskgen.specfile import read_specs

    table = write_manifest(read_specs(suite), output, fmt)
    click.echo(f"wrote {table.num_rows} rows to {output} ({fmt})")


def _load_table(source):
    from taskgen.api import default_suite_path
    from taskgen.manifest import load_manifest, manifest_table
    from taskgen.specfile import read_specs

    source = source or str(default_suite_path())
    if source.endswith((".arrow", ".parquet", ".feather")):
        return load_manifest(source)
    return manifest_table(read_specs(source))


@cli.command("list")
@click.option("--suite", "source", type=click.Path(exists=True, dir_okay=False),
              help="Spec file or manifest (default: the shipped default suite).")
@click.option("--family", multiple=True, help="Keep these families (repeatable).")
@click.option("--split", type=click.Choice(["meta_train", "meta_test"]), help="Keep one suite split.")
@click.option("--dataset", multiple=True, help="Keep tasks on these datasets (repeatable).")
@click.option("--variant", multiple=True, help="Keep these family variants (repeatable).")
@click.option("--max-params", type=click.IntRange(0), help="Keep tasks with at most this many parameters.")
@click.option("--max-flops", type=click.IntRange(0), help="Keep tasks with at most this many FLOPs per step.")
@click.option("--limit", type=click.IntRange(0), help="Print at most this many rows.")
@click.option("--json", "as_json", is_flag=True, help="Print rows as JSON.")
@friendly_errors
def list_(source, family, split, dataset, variant, max_params, max_flops, limit, as_json):
    """List tasks of a suite or manifest, filtered."""
    from taskgen.manifest import filter_manifest, row_summary

    table = filter_manifest(_load_table(source), family, split, max_params, max_flops, dataset, variant)
    rows = row_summary(table)[:limit] if limit is not None else row_summary(table)
    if as_json:
        _echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['task_id']:<40} {r['split']:<10} {r['variant']:<30} params {r['params']:>9} "
                   f"flops/step {r['flops_per_step']:>13}")
    click.echo(f"{table.num_rows} tasks", err=True)


@cli.command()
@click.argument("task_id")
@click.option("--suite", "source", type=click.Path(exists=True, dir_okay=False),
              help="Spec file or manifest (default: the shipped default suite).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@friendly_errors
def show(task_id, source, as_json):
    """Show one task's spec and its analytic cost."""
    from taskgen.api import resolve_spec

    spec = resolve_spec(task_id, source)
    family = default_registry().get(spec.family)
    cost = family.cost(spec.config)
    out = {"spec": spec.to_dict(), "variant": family.variant(spec.config), "params": cost.params,
           "flops_per_step": cost.flops_per_step, **{k: v for k, v in family.describe(spec.config).items()}}
    if as_json:
        _echo_json(out)
        return
    click.echo(json.dumps(out["spec"], indent=2, sort_keys=True))
    click.echo(f"variant {out['variant']}  params {cost.params}  flops/step {cost.flops_per_step}")


@cli.command()
@click.argument("task_id")
@click.option("--suite", "source", type=click.Path(exists=True, dir_okay=False),
              help="Spec file or manifest (default: the shipped default suite).")
@click.option("--steps", default=100, show_default=True, type=click.IntRange(1), help="Adam steps to run.")
@click.option("--lr", default=1e-3, show_default=True, type=click.FloatRange(0, min_open=True), help="Adam lr.")
@click.option("--json", "as_json", is_flag=True, help="Print the loss trace as JSON.")
@friendly_errors
def build(task_id, source, steps, lr, as_json):
    """Build a task on its real data and run a few Adam steps, printing the training loss as it goes down."""
    from taskgen.api import build_task, resolve_spec
    from taskgen.quickstep import adam_trace

    spec = resolve_spec(task_id, source)
    task = build_task(spec)
    trace = adam_trace(task, steps, lr)
    if as_json:
        _echo_json({"task_id": spec.task_id, "steps": steps, "lr": lr, "loss": trace})
        return
    every = max(1, steps // 10)
    for i in range(0, steps, every):
        click.echo(f"step {i:>6}  train loss {trace[i]:.6g}")
    click.echo(f"step {steps - 1:>6}  train loss {trace[-1]:.6g}")


def main():
    """Entry point of the ``taskgen`` console script."""
    cli(prog_name="taskgen")
