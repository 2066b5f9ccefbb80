"""The ``taskgen`` command line: one lazy layer over the whole toolkit.

The command tree is declared here without importing jax, flax, pyarrow or any family: the taskgen commands
(``families``, ``sample``, ``export``, ``list``, ``show``, ``build``) import what they need when they run, and the
groups of the other packages live in one CLI module per package, imported only when their command is used:

* ``data`` — :mod:`datasets_cache.cli`

The ``taskgen`` console script is the command line of the whole toolkit, a package above this one that adds its
own groups to :class:`LazyGroup`; ``python -m taskgen`` runs this package's commands alone.

User families: ``taskgen --plugin MODULE …`` (repeatable) and the ``TASKGEN_PLUGINS`` variable (comma-separated
modules) import modules that register families before any command runs (:mod:`taskgen.registry`); ``--plugin``
adds its modules to ``TASKGEN_PLUGINS`` so that child processes (Ray workers) load them too.

Every command runs inside one error boundary (:mod:`taskgen.errors`): the toolkit's own errors, OS errors on the
user's paths and damaged files become ``Error: …`` on stderr with exit status 1 (2 for usage errors); the
traceback is shown only with ``taskgen --debug …`` or ``TASKGEN_DEBUG=1``.
"""

from __future__ import annotations

import importlib
import json
import sys

import click

from taskgen.cli_types import NON_NEGATIVE_INT64, POSITIVE_FLOAT, POSITIVE_INT64, SEED, UNIT_INTERVAL
from taskgen.errors import TOOLKIT_PACKAGES

LAZY_COMMANDS = {
    "data": ("datasets_cache.cli:data", "Datasets: list, fetch into the cache, verify checksums, show paths."),
}
"""Subcommand name -> (``module:attribute``, one-line help shown by ``taskgen --help`` without importing it)."""

SUITE_HELP = "Spec file or manifest (default: the shipped default suite's frozen manifest)."


class LazyGroup(click.Group):
    """A click group whose :attr:`lazy_commands` are imported only when invoked (help lists them from the table),
    and whose invocation is wrapped in the toolkit's error boundary (errors of :attr:`own_packages` shown as
    ``Error:`` lines). A command line above this package subclasses it to add its own groups."""

    lazy_commands = LAZY_COMMANDS
    own_packages = TOOLKIT_PACKAGES

    def list_commands(self, ctx):
        """Every command name: the ones added so far and the lazy ones."""
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx, name):
        """The command ``name``, importing its module on first use (a missing third-party package gives a
        stand-in that says what is missing; a broken module of this project raises)."""
        if name in self.lazy_commands and name not in self.commands:
            module, _, attr = self.lazy_commands[name][0].partition(":")
            try:
                command = getattr(importlib.import_module(module), attr)
            except ModuleNotFoundError as e:
                if (e.name or "").split(".")[0] in self.own_packages:
                    raise  # our own code is broken: that is a bug to see, not a missing optional package
                return _unavailable_command(name, str(e))
            self.add_command(command, name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx, formatter):
        """The help's command list, from :attr:`lazy_commands` for commands not imported yet."""
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                cmd = self.commands[name]
                if not cmd.hidden:
                    rows.append((name, cmd.get_short_help_str(formatter.width - 6 - len(name))))
            else:
                rows.append((name, _short(self.lazy_commands[name][1], formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx):
        """Run the command inside the toolkit's error boundary (:mod:`taskgen.errors`)."""
        from taskgen.errors import error_boundary

        with error_boundary(debug=ctx.meta.get("taskgen.debug", False), packages=self.own_packages):
            return super().invoke(ctx)


def _short(text: str, limit: int) -> str:
    first = text.split(". ")[0].rstrip(".")
    return first if len(first) <= limit else first[: max(limit - 3, 10)] + "..."


def _unavailable_command(name: str, reason: str) -> click.Command:
    """A stand-in for a subcommand whose package cannot be imported: visible in help, says why when run."""

    def fail():
        raise click.ClickException(f"`taskgen {name}` is unavailable in this install: {reason}")

    return click.Command(name, callback=fail, help=f"(unavailable: {reason})")


def _echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _set_debug(ctx, _param, value):
    import os

    ctx.meta["taskgen.debug"] = bool(value) or os.environ.get("TASKGEN_DEBUG", "") not in ("", "0")
    return value


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="taskgen", prog_name="taskgen", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, is_eager=True, expose_value=False, callback=_set_debug,
              help="Show the full traceback of an error (also: TASKGEN_DEBUG=1).")
@click.option("--plugin", "plugins", multiple=True, metavar="MODULE",
              help="Import MODULE first: a module that registers your families with taskgen.register_family "
                   "(or MODULE:CLASS, a Family to register). Repeatable; also: TASKGEN_PLUGINS=mod1,mod2. Every "
                   "command and every worker process sees the families.")
def cli(plugins):
    """Sample, freeze, query and build training tasks; train and meta-train optimizers on them."""
    import os

    from taskgen.registry import PLUGINS_ENV

    if plugins or os.environ.get(PLUGINS_ENV, "").strip():
        from taskgen.registry import use_plugins

        use_plugins(plugins)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print names, versions and config spaces as JSON.")
def families(as_json):
    """List the registered task families with their versions and config spaces."""
    from families.space import describe_space
    from taskgen.registry import default_registry

    rows = [{"name": family.name, "version": family.version, "config_space": describe_space(family.config_space())}
            for family in default_registry().load_all()]
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        click.echo(f"{row['name']} v{row['version']}")
        lines = _space_lines(row["config_space"], "")
        width = max((len(path) for path, _ in lines), default=0)
        for path, text in lines:
            click.echo(f"  {path:<{width}}  {text}")


def _space_lines(desc: dict, path: str) -> list[tuple[str, str]]:
    """``(field path, what it takes)`` rows of a described config space (``families.space``'s ``describe()``):
    nested objects as dotted paths, list items as ``path[]``, a tagged union's fields with the tags they belong
    to (variants with the same field share one row)."""
    kind = desc.get("type")
    if kind == "object":
        rows = []
        for name, sub in desc.get("fields", {}).items():
            child = f"{path}.{name}" if path else name
            sub_rows = _space_lines(sub, child)
            if name in desc.get("optional", []) and sub_rows:
                sub_rows[0] = (sub_rows[0][0], sub_rows[0][1] + " (optional)")
            rows.extend(sub_rows)
        return rows
    if kind == "tagged":
        tag = desc["tag"]
        rows = [(f"{path}.{tag}", "one of " + ", ".join(desc["variants"]))]
        shared: dict[str, list[str]] = {}
        for variant, sub in desc["variants"].items():
            for field_path, text in _space_lines(sub, path):
                shared.setdefault(f"{field_path}\0{text}", []).append(variant)
        for key, variants in shared.items():
            field_path, text = key.split("\0")
            rows.append((field_path, f"{text} (when {tag} is {' or '.join(variants)})"))
        return rows
    if kind == "list":
        lo, hi = desc["length"]
        item = desc["item"]
        if item.get("type") in ("object", "tagged"):
            return [(path, f"list of {lo}..{hi} items")] + _space_lines(item, f"{path}[]")
        return [(path, f"list of {lo}..{hi}: {_scalar_text(item)}")]
    return [(path, _scalar_text(desc))]


def _scalar_text(desc: dict) -> str:
    kind = desc.get("type")
    if kind in ("int", "float"):
        lo, hi = desc["range"]
        return f"{kind} in [{lo:g}, {hi:g}]" if kind == "float" else f"int in [{lo}, {hi}]"
    if kind == "choice":
        return "one of " + ", ".join(json.dumps(o) if not isinstance(o, str) else o for o in desc["options"])
    if kind == "bool":
        return "true or false"
    if kind == "list":
        lo, hi = desc["length"]
        return f"list of {lo}..{hi}: {_scalar_text(desc['item'])}"
    return json.dumps(desc, sort_keys=True)


def _split_families(value: str) -> list[str] | None:
    from taskgen.registry import default_registry

    if value in ("", "default"):
        return None
    if value == "all":  # the families that load: a broken plugin is warned about and left out, as in `families`
        return [family.name for family in default_registry().load_all()]
    return [v.strip() for v in value.split(",") if v.strip()]


# Suite defaults, repeated here so that declaring the options imports nothing (tests check they agree with
# taskgen.suite).
DEFAULT_PER_FAMILY = 500
DEFAULT_SEED = 0
DEFAULT_HOLDOUT_FRACTION = 0.2
DEFAULT_HELD_OUT_VARIANTS = ("twod/beale", "quadratic/logspace_eigen", "char_lm/gru", "conv_pooling/squared_mean")


@cli.command()
@click.option("--families", "families_", default="default", show_default=True,
              help="Comma-separated family names; 'default' (the 12 built-ins) or 'all' (plus plugins and "
                   "registered families).")
@click.option("--per-family", default=DEFAULT_PER_FAMILY, show_default=True, type=NON_NEGATIVE_INT64,
              help="Specs sampled per family.")
@click.option("--seed", default=DEFAULT_SEED, show_default=True, type=NON_NEGATIVE_INT64,
              help="Suite seed; every spec seed derives from it.")
@click.option("--holdout-fraction", default=DEFAULT_HOLDOUT_FRACTION, show_default=True,
              type=UNIT_INTERVAL, help="Fraction of specs (by content hash) put in meta_test.")
@click.option("--hold-out-variant", "held_out", multiple=True,
              help="A family variant (e.g. twod/beale) put entirely in meta_test. Repeatable; "
                   f"default: {', '.join(DEFAULT_HELD_OUT_VARIANTS)}.")
@click.option("--no-default-holdouts", is_flag=True, help="Hold out no variant unless --hold-out-variant names it.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Spec file to write (.jsonl).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def sample(families_, per_family, seed, holdout_fraction, held_out, no_default_holdouts, output, as_json):
    """Sample a suite of task specs and write it atomically as JSON Lines."""
    from taskgen import suite as suite_mod
    from taskgen.registry import BUILTIN_FAMILIES, default_registry
    from taskgen.specfile import write_specs

    names = _split_families(families_)
    registry = default_registry()
    for name in names or []:
        registry.get(name)
    held = tuple(held_out) if (held_out or no_default_holdouts) else suite_mod.DEFAULT_HELD_OUT_VARIANTS
    total = per_family * len(names or BUILTIN_FAMILIES)
    progress = None
    if not as_json and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, desc="sampling", unit="spec")
        progress = lambda n: bar.update(n - bar.n)  # noqa: E731
    specs = suite_mod.generate_suite(names, per_family, seed, holdout_fraction, held, progress=progress)
    if progress is not None:
        bar.close()
    write_specs(specs, output)
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
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Manifest file to write: *.arrow (Arrow IPC file) or *.parquet.")
@click.option("--format", "fmt", type=click.Choice(["arrow", "parquet"]), default=None,
              help="Format to write [default: from the file's ending: .parquet/.pq Parquet, else Arrow]; a "
                   "format that contradicts the ending is refused.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def export(suite, output, fmt, as_json):
    """Export a spec file as an Arrow (IPC file) or Parquet manifest, one row per task."""
    from taskgen.manifest import manifest_format, write_manifest
    from taskgen.specfile import read_specs

    try:
        fmt = manifest_format(output, fmt)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'--format'") from None
    table = write_manifest(read_specs(suite), output, fmt)
    if as_json:
        _echo_json({"output": output, "format": fmt, "rows": table.num_rows})
        return
    click.echo(f"wrote {table.num_rows} rows to {output} ({fmt})")


@cli.command("list")
@click.option("--suite", "--manifest", "source", type=click.Path(exists=True, dir_okay=False), help=SUITE_HELP)
@click.option("--family", multiple=True, help="Keep these families (repeatable).")
@click.option("--split", type=click.Choice(["meta_train", "meta_test"]), help="Keep one suite split.")
@click.option("--dataset", multiple=True, help="Keep tasks on these datasets (repeatable).")
@click.option("--variant", multiple=True, help="Keep these family variants (repeatable).")
@click.option("--min-params", type=NON_NEGATIVE_INT64, help="Keep tasks with at least this many parameters.")
@click.option("--max-params", type=NON_NEGATIVE_INT64, help="Keep tasks with at most this many parameters.")
@click.option("--max-flops", type=NON_NEGATIVE_INT64, help="Keep tasks with at most this many FLOPs per step.")
@click.option("--sample", "sample_n", type=NON_NEGATIVE_INT64,
              help="Keep a random subsample of this many of the matching tasks (seeded by --seed; in suite order "
                   "unless --sort).")
@click.option("--seed", type=SEED, default=None, help="Seed of --sample [default: 0].")
@click.option("--sort", "sort_by", metavar="COLUMN",
              help="Sort by a manifest column, ascending; -COLUMN sorts descending (e.g. --sort -params). Ties keep "
                   "suite order.")
@click.option("--limit", type=NON_NEGATIVE_INT64, help="Print at most this many rows (after --sample and --sort).")
@click.option("--json", "as_json", is_flag=True, help="Print rows as JSON.")
def list_(source, family, split, dataset, variant, min_params, max_params, max_flops, sample_n, seed, sort_by, limit,
          as_json):
    """List tasks of a suite or manifest, filtered (a manifest is filtered as it is, without parsing specs)."""
    from taskgen.api import load_table
    from taskgen.manifest import filter_manifest, row_summary, sample_manifest, sort_manifest

    if seed is not None and sample_n is None:
        raise click.UsageError("--seed only seeds --sample; give --sample N too")
    table = filter_manifest(load_table(source), family, split, max_params, max_flops, dataset, variant,
                            min_params=min_params)
    if sample_n is not None:
        table = sample_manifest(table, sample_n, 0 if seed is None else seed)
    if sort_by is not None:
        try:
            table = sort_manifest(table, sort_by)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="'--sort'") from None
    shown = table.slice(0, limit) if limit is not None else table
    rows = row_summary(shown)
    if as_json:
        _echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['task_id']:<40} {r['split']:<10} {r['variant']:<30} params {r['params']:>9} "
                   f"flops/step {r['flops_per_step']:>13}")
    click.echo(f"{table.num_rows} tasks", err=True)


@cli.command()
@click.argument("task_id")
@click.option("--suite", "--manifest", "source", type=click.Path(exists=True, dir_okay=False), help=SUITE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def show(task_id, source, as_json):
    """Show one task's spec and its analytic cost."""
    from taskgen.api import resolve_spec
    from taskgen.registry import default_registry

    spec = _resolve(resolve_spec, task_id, source)
    family = default_registry().get(spec.family)
    cost = family.cost(spec.config)
    out = {"spec": spec.to_dict(), "variant": family.variant(spec.config), "params": cost.params,
           "flops_per_step": cost.flops_per_step, **{k: v for k, v in family.describe(spec.config).items()}}
    if as_json:
        _echo_json(out)
        return
    click.echo(f"task           {spec.task_id}")
    click.echo(f"family         {spec.family} v{spec.family_version}  variant {out['variant']}")
    click.echo(f"seed           {spec.seed}  split {spec.split}")
    click.echo(f"params         {cost.params}  flops/step {cost.flops_per_step}")
    for k, v in family.describe(spec.config).items():
        click.echo(f"{k:<14} {json.dumps(v) if not isinstance(v, str) else v or '-'}")
    click.echo(f"config         {spec.config_json}")


def _resolve(resolve_spec, task_id, source):
    try:
        return resolve_spec(task_id, source)
    except KeyError as e:
        raise click.ClickException(str(e.args[0]) if e.args else str(e)) from None


@cli.command()
@click.argument("task_id")
@click.option("--suite", "--manifest", "source", type=click.Path(exists=True, dir_okay=False), help=SUITE_HELP)
@click.option("--steps", default=100, show_default=True, type=POSITIVE_INT64, help="Adam steps to run.")
@click.option("--lr", default=1e-3, show_default=True, type=POSITIVE_FLOAT, help="Adam learning rate (finite, > 0).")
@click.option("--json", "as_json", is_flag=True, help="Print the loss trace as JSON.")
def build(task_id, source, steps, lr, as_json):
    """Build a task on its real data and run a few Adam steps, printing the training loss as it goes down.

    Losses are printed as soon as each tenth of the steps is done (the persistent compilation cache is on)."""
    from taskgen.api import build_task, resolve_spec
    from taskgen.jax_cache import enable_compilation_cache
    from taskgen.quickstep import adam_chunks

    spec = _resolve(resolve_spec, task_id, source)
    enable_compilation_cache(min_compile_time_s=0.0)  # keep even the small programs: the next build skips them
    task = build_task(spec)
    every = max(1, steps // 10)
    trace = []
    for chunk in adam_chunks(task, steps, lr, every):
        start = len(trace)
        trace.extend(chunk)
        if not as_json:
            click.echo(f"step {start:>6}  train loss {trace[start]:.6g}")
    if as_json:
        _echo_json({"task_id": spec.task_id, "steps": steps, "lr": lr, "loss": trace})
        return
    click.echo(f"step {steps - 1:>6}  train loss {trace[-1]:.6g}")


@cli.command("check-family")
@click.argument("name")
@click.option("--specs", "n_specs", default=3, show_default=True, type=POSITIVE_INT64,
              help="Specs to sample (from fixed seeds), build on real data and check.")
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed the spec seeds derive from.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check_family_cmd(name, n_specs, seed, as_json):
    """Check that family NAME keeps the family contract: deterministic sampling, validation, spec round trip,
    manifest columns, a build on real data, a finite loss at init, cost() against the built model (exact
    parameter count, FLOPs within a factor of 20 of XLA's count) and compiled-code sharing by static key.

    Prints one line per check; exits with status 1 and one Error line if any failed. A plugin family needs
    --plugin MODULE (or TASKGEN_PLUGINS) like every command."""
    from taskgen.family_check import FamilyCheckError, check_family
    from taskgen.jax_cache import enable_compilation_cache

    enable_compilation_cache()
    report = check_family(name, n_specs, seed, strict=False)
    if as_json:
        _echo_json(report.to_dict())
    else:
        for line in report.lines():
            click.echo(line)
    if not report.ok:
        raise FamilyCheckError(report)


def main():
    """``python -m taskgen``: this package's commands alone (the console script adds the packages above)."""
    cli(prog_name="taskgen")
