"""The command line of lopt_trainer, in one place: ``taskgen train`` and ``taskgen lopt …``.

The top-level ``taskgen`` group (the command line above this package) imports this module only when one of these commands runs;
each command imports the machinery it needs in its body, so that ``--help`` answers without importing JAX. The
work itself lives elsewhere: :mod:`lopt_trainer.app.train_task` (train one task), :mod:`lopt_trainer.meta`
(meta-training), :mod:`lopt_trainer.evaluation` (judging θ), :mod:`lopt_trainer.theta` (naming and mixing θ).

    taskgen train TASK_ID --optimizer adam --steps 1000
    taskgen lopt meta-train --manifest M.arrow --filter family=quadratic --filter split=meta_train \\
        --max-params 5000 --steps 500 --out runs/q1 [--resume] [--workers 2 [--address ray://host:10001]] \\
        [--config settings.toml] [--set sigma=0.03 --set truncation=20]
    taskgen lopt plot runs/q1
    taskgen lopt eval --theta THETA.npz --tasks 100 --seeds 2 --steps 1000 --trials 1,10 --out runs/eval \\
        [--suite S.jsonl | --manifest M.arrow] [--filter family=quadratic] [--max-params 20000] \\
        [--workers 2] [--resume]
    taskgen lopt eval --theta THETA.npz --on valid [--against handset]

meta-train precedence: built-in defaults < ``--config`` file < ``--set`` < explicit flags
(:func:`lopt_trainer.meta.config.resolve_config`). The resolved config is written to ``RUN/config.json``. ``--resume`` continues from ``RUN/checkpoint.msgpack`` with the stored
settings (``--steps`` and the worker flags may change).

Every ``--theta`` (and ``--init-theta``, ``--from``, ``--to``) takes one grammar, :data:`THETA` (see
:mod:`lopt_trainer.theta.names`): a reference-layout ``.npz``, a meta-training run folder, a checkpoint file,
``pretrained`` (the default), ``handset`` or ``random``. Every command that
writes a folder records its command line in ``OUT/command.json`` (shown by a run's report) and holds the
folder's lock while it writes (:mod:`lopt_trainer.common.folder_lock`); a folder that holds a run needs
``--resume`` or ``--overwrite``. Numeric options take the types of :mod:`taskgen.cli_types` with their real ranges.
"""

from __future__ import annotations

import json
import sys

import click

from lopt_trainer.inner.names import OPTIMIZERS  # plain names, no JAX
from lopt_trainer.theta.names import PRETRAINED, THETA_GRAMMAR, theta_label, theta_problem  # plain names, no JAX
from taskgen.cli_types import (FINITE_FLOAT, NON_NEGATIVE_INT64, POSITIVE_FLOAT, POSITIVE_INT64, SEED,
                               Int64)  # click types, no JAX


class ThetaType(click.ParamType):
    """The click type of every option that names a θ: a value of the one θ grammar
    (:mod:`lopt_trainer.theta.names`), else a usage error that lists the grammar. The value stays a string;
    :func:`lopt_trainer.theta.load.load_theta` reads it."""

    name = "THETA"

    def convert(self, value, param, ctx):
        """``value`` as a string when it names a θ; a usage error naming the problem and the grammar otherwise."""
        problem = theta_problem(value)
        if problem:
            self.fail(f"{problem}; a θ is {THETA_GRAMMAR}", param, ctx)
        return str(value)


PRESET_NAMES = ("recipe", "quick")
"""The presets of ``meta-train --preset`` (:data:`lopt_trainer.meta.config.PRESETS`, listed here so that
``--help`` needs no JAX; a test checks they agree)."""

THETA = ThetaType()
THETA_HELP = f"The learned optimizer's θ: {THETA_GRAMMAR}."


def theta_option(*decls, **kw):
    """A ``--theta`` option of the one grammar (:data:`THETA`), default ``pretrained``, with the shared help."""
    kw.setdefault("default", PRETRAINED)
    kw.setdefault("show_default", kw["default"] is not None)
    kw["help"] = THETA_HELP + (" " + kw["help"] if kw.get("help") else "")
    return click.option(*(decls or ("--theta", "theta")), type=THETA, **kw)


def int_list(ctx, param, text: str) -> tuple:
    """Click callback: ``"1,10"`` → ``(1, 10)``, each item a :data:`~taskgen.cli_types.POSITIVE_INT64`."""
    out = tuple(POSITIVE_INT64.convert(x.strip(), param, ctx) for x in text.split(",") if x.strip())
    if not out:
        raise click.BadParameter("need at least one budget", ctx, param)
    return out


def _exclusive(resume: bool, overwrite: bool) -> None:
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other: continue the run or start it again")


@click.group("lopt")
def lopt():
    """Meta-train learned optimizers and look at the runs."""


@lopt.command("meta-train")
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False), help="Arrow/Parquet manifest of tasks.")
@click.option("--suite", type=click.Path(exists=True, dir_okay=False), help="Spec file (JSONL); default suite if "
              "neither --manifest nor --suite is given.")
@click.option("--filter", "filters", multiple=True, help="column=value (family, split, dataset, variant, task_id);"
              " repeat a column for alternatives. Default: split=meta_train.")
@click.option("--max-params", type=NON_NEGATIVE_INT64, help="Keep tasks with at most this many parameters.")
@click.option("--max-flops", type=NON_NEGATIVE_INT64, help="Keep tasks with at most this many FLOPs per step.")
@click.option("--steps", type=POSITIVE_INT64, help="Outer steps in all (a resumed run continues up to this).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Run folder (locked while "
              "the run writes it; a folder holding a run needs --resume or --overwrite).")
@click.option("--resume", is_flag=True, help="Continue from RUN/checkpoint.msgpack if present, with the run's "
              "settings: a setting given that differs from the run's is refused (--steps and the worker flags "
              "excepted), as is a changed task list.")
@click.option("--overwrite", is_flag=True, help="Start again in a folder that holds a run: its files (checkpoints, "
              "metrics, config, panel, plots) are removed first; other files stay.")
@click.option("--allow-change", is_flag=True, help="With --resume: allow changing the settings that are safe to "
              "change mid-run (checkpoint_every, eval_every, eval_tasks, eval_steps, panel_every, compilation_cache, "
              "plugins); "
              "the estimator, sigma, truncation, horizons, tasks, outer optimizer, seed and θ sizes never change.")
@click.option("--workers", type=NON_NEGATIVE_INT64, help="Ray gradient workers (0 = in process).")
@click.option("--address", help="Existing Ray cluster (e.g. ray://host:10001); default: a local cluster bound to "
              "127.0.0.1.")
@click.option("--pin-workers", is_flag=True, default=None, help="Pin local Ray workers one per core.")
@click.option("--preset", type=click.Choice(PRESET_NAMES), default=None,
              help="Where the settings start: 'recipe' (the pretraining recipe of the shipped θ: 16 estimators × 2 "
              "tasks of 12 families, outer-valid meta-loss, loss scaling, quality panel every 150 steps) or 'quick' "
              "(one group of 8 tasks, train meta-loss, no panel). Default: recipe. With the recipe, a --suite or "
              "--manifest of your own trains on its meta_train specs (the recipe's families and limits step aside) "
              "and the panel judges θ on its meta_test specs. Every setting, its default and range: "
              "`taskgen lopt settings`.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="Settings file (.json or .toml) with MetaTrainConfig fields, over the preset.")
@click.option("--set", "sets", multiple=True, help="key=value override of any setting (value parsed as JSON).")
@click.option("--seed", type=SEED)
@click.option("--lopt", "lopt_name", help="'hierarchical' (default) or module:factory.")
@theta_option("--init-theta", "init_theta", default=None, help="Start from this θ instead of the hand-set one.")
@click.option("--plugin", "plugins", multiple=True, help="Module to import first (registers user families).")
@click.option("--from-state", "from_state", type=click.Path(exists=True, file_okay=False),
              help="Continue a portable pretraining state (a directory written by `taskgen lopt export-state`): θ, "
              "outer-optimizer state, task-sampler state and step restored, estimators started afresh (with a "
              "warning); the run then goes on as a resumed one up to --steps in all. With --resume, a run folder "
              "whose own checkpoint is at least as far is continued instead.")
@click.option("--hours", type=POSITIVE_FLOAT, default=None, help="Stop (with a checkpoint) after the outer step "
              "during which this many hours passed, if --steps is not reached first.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def meta_train_cmd(manifest, suite, filters, max_params, max_flops, steps, out, resume, overwrite, allow_change,
                   workers, address, pin_workers, preset, config_file, sets, seed, lopt_name, init_theta, plugins,
                   from_state, hours, no_progress):
    """Meta-train a learned optimizer (truncated PES by default; es, backprop, hybrid: --set estimator=; the command
    line is kept in RUN/command.json).

    Settings, in rising precedence: the preset, --config, --set, the flags. The resolved settings that differ from
    the 'quick' defaults are printed at the start."""
    # deferred (as in every command here): `taskgen --help` must not import JAX
    from lopt_trainer.common.task_pool import parse_filters
    from lopt_trainer.meta.config import differences, resolve_config
    from lopt_trainer.meta.trainer import meta_train

    _exclusive(resume, overwrite)
    flags = {"manifest": manifest, "suite": suite, "max_params": max_params, "max_flops": max_flops,
             "steps": steps, "workers": workers, "address": address, "pin_workers": pin_workers, "seed": seed,
             "lopt": lopt_name, "init_theta": init_theta, "plugins": list(plugins)}
    try:
        flags["filters"] = parse_filters(filters) if filters else None
        preset = preset or "recipe"
        config, given = resolve_config(config_file, sets, flags, preset=preset)
    except (TypeError, ValueError) as e:
        raise click.UsageError(str(e)) from None
    if config.outer_opt.startswith("lopt:") and theta_problem(config.outer_opt[5:]):
        raise click.UsageError(f"outer_opt {config.outer_opt!r}: {theta_problem(config.outer_opt[5:])}; "
                               f"a θ is {THETA_GRAMMAR}")
    _echo_settings(preset, config_file, differences(config), resume)
    if from_state:
        click.echo("  (--from-state: the pretraining state's stored settings are kept; given ones must agree)",
                   err=True)
    result = meta_train(config, out, resume=resume, overwrite=overwrite, progress=not no_progress, given_keys=given,
                        allow_change=allow_change, record_command=True, continue_from=from_state,
                        max_seconds=hours * 3600.0 if hours else None)
    from lopt_trainer.app.run_text import end_lines

    for line in end_lines(result):
        click.echo(line, err=True)
    click.echo(json.dumps({"run": str(result.run_dir), "step": result.state.step,
                           "interrupted": result.interrupted, "stop_reason": result.stop_reason,
                           "verdict": ((result.summary or {}).get("panel") or {}).get("verdict")}))
    if result.interrupted:
        sys.exit(130)


def _echo_settings(preset: str, config_file, changed: dict, resume: bool) -> None:
    """The resolved settings on stderr, one screen: what differs from the 'quick' defaults."""
    source = f"preset {preset}" + (f" + {config_file}" if config_file else "")
    click.echo(f"meta-train settings ({source}; --set/flags on top; `taskgen lopt settings` lists all); "
               f"differing from the defaults:", err=True)
    for key, value in changed.items():
        click.echo(f"  {key:<18} {json.dumps(value, sort_keys=True)}", err=True)
    if resume:
        click.echo("  (--resume: a run that has a checkpoint continues with its stored settings)", err=True)


@lopt.command("export-state")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="The portable state directory to write (replaced as a whole).")
def export_state_cmd(run, out):
    """Export RUN's latest checkpoint as a portable pretraining state (θ, outer-optimizer and task-sampler state,
    step, settings, session history; no estimator states): a few hundred KB to commit and continue from with
    `meta-train --from-state`."""
    from lopt_trainer.meta.portable import export_state, read_state  # deferred: see meta_train_cmd

    dest = export_state(run, out)
    state = read_state(dest)
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    click.echo(json.dumps({"state": str(dest), "step": state.step, "bytes": size, "sessions": len(state.history)}))


@lopt.command("settings")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def settings_cmd(as_json):
    """Every meta-train setting: type, default, value in each preset, and range or choices."""
    from lopt_trainer.meta.config import describe_settings  # deferred: see meta_train_cmd

    rows = describe_settings()
    if as_json:
        click.echo(json.dumps(rows, sort_keys=True, indent=1))
        return
    presets = [k[len("preset_"):] for k in rows[0] if k.startswith("preset_")]
    click.echo(f"{'setting':<21} {'type':<12} {'default (quick)':<22} {'recipe':<22} range / choices")
    for r in rows:
        recipe = r["preset_recipe"] if "recipe" in presets else ""
        rng = (" | ".join(r["choices"]) if r["choices"]
               else {None: "", ">0": "> 0"}.get(r["minimum"], f">= {r['minimum']}"))
        rng += f", <= {r['maximum']}" if r["maximum"] is not None else ""
        click.echo(f"{r['name']:<21} {r['type']:<12} {_cell(r['default']):<22} "
                   f"{_cell(recipe) if recipe != r['default'] else '=':<22} {rng}")
        click.echo(f"    {r['help']} [resume: {r['resume']}]")
    click.echo("Set with --config FILE (.json/.toml), --set key=value (JSON value) or the flags; "
               "'=' under recipe: same as the default. resume: free = taken from the command line, safe = may "
               "change with --allow-change, fixed / tasks = never changes mid-run.")


def _cell(value, width: int = 22) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[:width - 1] + "…"


@lopt.command("plot")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out", type=click.Path(file_okay=False), help="Folder for the PNGs (default: RUN).")
def plot_cmd(run, out):
    """Write PNG curves (meta-loss, gradient norm, throughput, held-out evaluation) of a run."""
    from lopt_trainer.meta.metrics import plot_run  # deferred: see meta_train_cmd

    for path in plot_run(run, out):
        click.echo(str(path))


@lopt.command("eval")
@theta_option()
@click.option("--on", "on", type=click.Choice(["valid", "test"]), default=None,
              help="Judge θ on the yardstick's frozen task set: 'valid' to choose θ, settings and branches, 'test' "
              "for claims (the paper's normalized loss against committed AdamLR baselines, 3 seeds, 1000 steps). "
              "The other task options do not apply.")
@click.option("--against", "against", type=THETA, multiple=True,
              help="With --on: another θ to compare with, paired task by task (repeatable).")
@click.option("--suite", type=click.Path(exists=True, dir_okay=False), help="Spec file (default: the shipped suite).")
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False), help="Arrow/Parquet manifest instead.")
@click.option("--tasks", "n_tasks", type=POSITIVE_INT64, default=100, show_default=True,
              help="Tasks in all: half seen (meta_train), half unseen (meta_test).")
@click.option("--task-seed", type=SEED, default=0, show_default=True, help="Seed of the task selection.")
@click.option("--filter", "filters", multiple=True, help="column=value over family, dataset, variant, task_id.")
@click.option("--max-params", type=Int64(min=-1), default=20_000, show_default=True,
              help="Skip larger tasks (-1: no limit).")
@click.option("--max-flops", type=Int64(min=-1), default=5_000_000, show_default=True,
              help="Skip tasks with more FLOPs per step (-1: no limit).")
@click.option("--seeds", type=POSITIVE_INT64, default=2, show_default=True)
@click.option("--steps", type=POSITIVE_INT64, default=1000, show_default=True)
@click.option("--trials", default="1,10", show_default=True, callback=int_list,
              help="Per-task trial budgets of Adam8p and opt_list (comma-separated, each >= 1).")
@click.option("--adamlr-trials", type=POSITIVE_INT64, default=14, show_default=True,
              help="AdamLR grid size (1e-7 … 10^-0.5).")
@click.option("--trial-seed", type=SEED, default=0, show_default=True, help="Seed of the Adam8p random search.")
@click.option("--baselines", default="adamlr,adam8p,opt_list", show_default=True,
              help="Comma-separated baselines to run.")
@click.option("--eval-every", type=POSITIVE_INT64, default=None, help="Curve spacing (default steps/20).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Evaluation folder (locked while the evaluation writes it); required without --on, optional with "
              "it (then it receives yardstick.json, per_task.csv and strip.png).")
@click.option("--workers", type=NON_NEGATIVE_INT64, default=0, show_default=True,
              help="Ray workers (0 = in this process).")
@click.option("--address", default=None, help="Existing Ray cluster (default: a local one on 127.0.0.1).")
@click.option("--resume", is_flag=True, help="Reuse the runs already in --out.")
@click.option("--overwrite", is_flag=True, help="Start again in a folder that holds an evaluation: its files are "
              "removed first; other files stay.")
@click.option("--no-progress", is_flag=True)
@click.option("--json", "as_json", is_flag=True, help="Print the summary (rows, tasks, legend) as JSON.")
def eval_cmd(theta, on, against, suite, manifest, n_tasks, task_seed, filters, max_params, max_flops, seeds, steps,
             trials, adamlr_trials, trial_seed, baselines, eval_every, out_dir, workers, address, resume, overwrite,
             no_progress, as_json):
    """Evaluate a learned optimizer θ. With --on valid|test: the yardstick (θ's normalized final loss against
    Global and per-task AdamLR on a frozen task set, with intervals; --against compares θ with others task by
    task). Without it: a task draw from a suite, against Global / per-task AdamLR, Adam8p and opt_list, as the
    improvement of the final normalised test loss over each baseline's (> 0: learned better)."""
    if on is not None:
        ctx = click.get_current_context()
        given = [p.opts[0] for p in ctx.command.params
                 if p.name not in ("theta", "on", "against", "out_dir", "no_progress", "as_json")
                 and ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"{', '.join(given)} do not apply with --on: the yardstick's tasks, seeds, steps "
                                   "and baselines are fixed")
        _yardstick_eval(theta, on, against, out_dir, as_json, no_progress)
        return
    if against:
        raise click.UsageError("--against needs --on valid|test")
    if out_dir is None:
        raise click.UsageError("Missing option '--out' (needed without --on)")
    # deferred: see meta_train_cmd
    from lopt_trainer.common.folder_lock import folder_lock
    from lopt_trainer.common.run_files import write_command
    from lopt_trainer.common.run_files import clean_json
    from lopt_trainer.common.task_pool import load_pool, no_specs_message, parse_filters
    from lopt_trainer.evaluation.runner import run_evaluation
    from lopt_trainer.evaluation.settings import EvalSettings
    from lopt_trainer.evaluation.summary_text import legend, summary_json, summary_lines, task_lines
    from lopt_trainer.evaluation.tasks import held_out_variants, select_tasks, split_pools
    from lopt_trainer.theta.load import load_theta

    _exclusive(resume, overwrite)

    try:
        settings = EvalSettings(steps=steps, seeds=seeds, trials=trials, adamlr_trials=adamlr_trials,
                                trial_seed=trial_seed, eval_every=eval_every,
                                baselines=tuple(b.strip() for b in baselines.split(",") if b.strip()))
        flt = parse_filters(filters)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    pool = load_pool(suite, manifest)
    limits = {"max_params": None if max_params < 0 else max_params,
              "max_flops": None if max_flops < 0 else max_flops, "filters": flt}
    tasks = select_tasks(pool, n_tasks, task_seed, **limits)
    if not tasks:
        raise click.ClickException(no_specs_message(suite or manifest or "the default suite", pool, flt,
                                                    limits["max_params"], limits["max_flops"]))
    if len(tasks) < n_tasks:
        seen, unseen = split_pools(pool, **limits)
        click.echo(f"asked for {n_tasks} tasks; the pool has {len(seen)} seen + {len(unseen)} unseen within the "
                   f"limits{' and filters' if flt else ''} (half of the tasks are drawn from each)", err=True)
    held = held_out_variants(tasks, pool)
    click.echo(f"{sum(t.group == 'seen' for t in tasks)} seen + {sum(t.group == 'unseen' for t in tasks)} unseen "
               f"tasks; held-out variants among the unseen: {', '.join(held) or 'none'}", err=True)
    with folder_lock(out_dir, "evaluation folder"):
        summary = run_evaluation(load_theta(theta), tasks, out_dir, settings, workers=workers, address=address,
                                 resume=resume, overwrite=overwrite, theta_path=theta_label(theta),
                                 progress=not no_progress)
        write_command(out_dir)
    if as_json:
        click.echo(json.dumps(clean_json(summary_json(summary, tasks, theta_label(theta))), sort_keys=True))
        return
    click.echo(f"θ {theta_label(theta)} on {len(tasks)} tasks:")
    for line in task_lines(tasks):
        click.echo(line)
    for line in ["", *legend(settings.to_dict()), "", *summary_lines(summary)]:
        click.echo(line)
    click.echo(f"wrote {out_dir}/results.arrow, eval_summary.json, boxplot_final.png, boxplot_auc.png")


def _yardstick_eval(theta, on: str, against, out_dir, as_json: bool, no_progress: bool) -> None:
    """``taskgen lopt eval --on``: θ (and each ``--against``) on the yardstick's set ``on``."""
    from lopt_trainer.evaluation import yardstick
    from lopt_trainer.theta.load import load_theta

    names = [theta, *against]
    results = [yardstick.evaluate(load_theta(name), on, progress=not no_progress) for name in names]
    _yardstick_report([theta_label(n) for n in names], results, on, out_dir, as_json)


def _yardstick_report(labels: list, results: list, set_name: str, out_dir, as_json: bool) -> None:
    """Print (text or ``--json``) and, with ``out_dir``, write the yardstick results of several θ on one set: each
    θ's headline and the first θ against each of the others, paired."""
    from lopt_trainer.common.run_files import clean_json
    from lopt_trainer.evaluation import yardstick_text
    from lopt_trainer.evaluation.yardstick_files import results_payload, write_results

    payload = results_payload(labels, results, set_name)
    comparisons = payload["comparisons"]
    written = write_results(out_dir, payload, labels, results) if out_dir is not None else []
    if as_json:
        click.echo(json.dumps(clean_json(payload), sort_keys=True, allow_nan=False))
        return
    for lab, (summary, _, _) in zip(labels, results):
        for line in yardstick_text.summary_lines(summary, label=f"θ {lab}"):
            click.echo(line)
        click.echo("")
    for comp in comparisons:
        for line in yardstick_text.comparison_lines(comp["a"], comp["b"], comp, per_task=True):
            click.echo(line)
        click.echo("")
    for line in yardstick_text.legend(results[0][0]):
        click.echo(line)
    if written:
        click.echo("wrote " + ", ".join(str(p) for p in written))


@lopt.command("compare")
@click.argument("thetas", type=THETA, nargs=-1, required=True)
@click.option("--tasks", "source", default="valid", show_default=True,
              help="Where to compare: 'valid' (the yardstick's set for choosing), 'test' (its set for claims), or a "
              "spec file / manifest of your own, judged on its meta_test specs.")
@click.option("--filter", "filters", multiple=True, help="With a spec file: column=value over family, dataset, "
              "variant, task_id.")
@click.option("--max-tasks", type=POSITIVE_INT64, default=12, show_default=True,
              help="With a spec file: how many of its meta_test specs, spread over its families.")
@click.option("--task-seed", type=SEED, default=0, show_default=True, help="With a spec file: which ones.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Also write yardstick.json, per_task.csv and strip.png here (nothing is written otherwise; runs "
              "are cached under ~/.cache/taskgen/yardstick or $TASKGEN_YARDSTICK_CACHE).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def compare_cmd(thetas, source, filters, max_tasks, task_seed, out_dir, as_json, no_progress):
    """Compare θ (files, runs, 'handset', 'pretrained', ...) on one task source: the first against each of the
    others, paired task by task in the paper's normalized loss, with 95% intervals, a legend and (--out) a plot."""
    from lopt_trainer.evaluation import yardstick
    from lopt_trainer.theta.load import load_theta

    if len(thetas) < 2:
        raise click.UsageError("give at least two θ to compare (e.g. handset RUN)")
    if source in ("valid", "test"):
        if filters:
            raise click.UsageError("--filter applies to a spec file of your own, not to the yardstick's frozen sets")
        results = [yardstick.evaluate(load_theta(t), source, progress=not no_progress) for t in thetas]
        set_name = source
    else:
        tasks = _source_tasks(source, filters, max_tasks, task_seed)
        set_name, results = yardstick.evaluate_many_on_tasks([load_theta(t) for t in thetas], tasks,
                                                             what=f"held-out tasks of {source}",
                                                             progress=not no_progress)
    _yardstick_report([theta_label(t) for t in thetas], results, set_name, out_dir, as_json)


def _source_tasks(source: str, filters, max_tasks: int, task_seed: int) -> list:
    """The compared tasks of a spec file or manifest: up to ``max_tasks`` of its filtered ``meta_test`` specs."""
    from pathlib import Path

    import taskgen
    from lopt_trainer.common.task_pool import filter_specs, parse_filters
    from lopt_trainer.evaluation.task_sets import source_tasks

    if not Path(source).is_file():
        raise click.BadParameter(f"{source!r} is neither 'valid', 'test' nor a spec file or manifest",
                                 param_hint="--tasks")
    try:
        wanted = parse_filters(filters) if filters else {}
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--filter") from None
    specs = taskgen.load_specs(source)
    held = filter_specs(specs, {**wanted, "split": ["meta_test"]}, None, None)
    if not held:
        raise click.UsageError(f"{source}: no meta_test spec{' passes the filters' if wanted else ''} ({len(specs)} "
                               "specs in all); compare on held-out tasks: sample them with `taskgen sample`, which "
                               "splits meta_train / meta_test")
    return source_tasks(held, max_tasks, task_seed)


@lopt.group("yardstick")
def yardstick_group():
    """The yardstick's frozen task sets and their committed AdamLR baselines."""


@yardstick_group.command("sets")
@click.option("--json", "as_json", is_flag=True, help="Print the sets' index as JSON.")
def yardstick_sets_cmd(as_json):
    """The valid and test task sets: sizes per family, digests, how they were drawn."""
    from lopt_trainer.evaluation.task_sets import load_task_set, read_index

    index = read_index()
    for name in index["sets"]:
        load_task_set(name)  # checks the digest
    if as_json:
        click.echo(json.dumps(index, sort_keys=True))
        return
    for name in ("valid", "test"):
        entry = index["sets"][name]
        fams = ", ".join(f"{f} {n}" for f, n in sorted(entry["per_family"].items()))
        click.echo(f"{name}: {entry['tasks']} tasks (sha256 {entry['sha256'][:16]}…): {fams}")
    click.echo(f"drawn fresh (seed {index['seed']}) from the 12 built-in families within the recipe's cost limits, "
               f"without the held-out variants {', '.join(index['excluded_variants'])}; disjoint from each other "
               "and from the default suite")


@yardstick_group.command("baselines")
@click.option("--on", "on", type=click.Choice(["valid", "test"]), required=True, help="The task set.")
@click.option("--work", "work", required=True, type=click.Path(file_okay=False),
              help="Work folder of the grid runs (resumable: finished tasks are kept).")
@click.option("--no-progress", is_flag=True)
def yardstick_baselines_cmd(on, work, no_progress):
    """Compute the AdamLR grid on a set and write its committed table (maintainers: run once per change of the
    inner loop, the grid or a normalizer, then commit lopt_trainer/data/yardstick/)."""
    from lopt_trainer.common.folder_lock import folder_lock
    from lopt_trainer.evaluation.baseline_table import compute_baselines, write_baselines

    with folder_lock(work, "baseline work folder"):
        compute_baselines(on, work, progress=not no_progress)
        click.echo(f"wrote {write_baselines(on, work)}")


@yardstick_group.command("verify")
@click.option("--on", "on", type=click.Choice(["valid", "test"]), default="valid", show_default=True)
@click.option("--tasks", "n_tasks", type=POSITIVE_INT64, default=5, show_default=True,
              help="Tasks to re-run (one per family first).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the choice of tasks.")
@click.option("--work", "work", type=click.Path(file_okay=False), default=None,
              help="Work folder of the re-runs (default: a temporary folder).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.option("--no-progress", is_flag=True)
def yardstick_verify_cmd(on, n_tasks, seed, work, as_json, no_progress):
    """Re-run a sample of the committed AdamLR baselines on this machine and say how far they differ."""
    import tempfile

    from lopt_trainer.common.run_files import clean_json
    from lopt_trainer.evaluation.baseline_table import VERIFY_TOLERANCE, verify_baselines

    with tempfile.TemporaryDirectory() as tmp:
        out = verify_baselines(on, work or tmp, n_tasks=n_tasks, seed=seed, progress=not no_progress)
    if as_json:
        click.echo(json.dumps(clean_json(out), sort_keys=True, allow_nan=False))
        return
    click.echo(f"{len(out['tasks'])} tasks of {on} re-run here ({out['this_machine']['cpu']}) against the committed "
               f"table ({out['committed_machine'].get('cpu', '?')}):")
    for r in out["per_task"]:
        same = "same" if r["per_task_trial"] == r["per_task_trial_now"] else "CHANGED"
        click.echo(f"  {r['task_id']:42s} largest |Δ final loss| {r['max_abs_diff_final']:.2e}; L* moved by "
                   f"{r['best_loss_diff_normalized']:.2e} of L0 − L*; per-task AdamLR's rate {same}")
    click.echo("largest |Δ| over all runs (normalised-loss units): "
               + ", ".join(f"{k} {v:.2e}" for k, v in out["max_abs_diff"].items()))
    click.echo(f"verdict: L* within {out['max_best_loss_diff_normalized']:.2e} of L0 − L* (tolerance "
               f"{VERIFY_TOLERANCE:g}); per-task AdamLR's choice changed on {out['per_task_choice_changed']} task(s)")
    if out["max_best_loss_diff_normalized"] > VERIFY_TOLERANCE or out["per_task_choice_changed"]:
        raise click.ClickException("the committed baselines differ on this machine beyond the tolerance; "
                                   "judge θ with baselines recomputed here (taskgen lopt yardstick baselines)")


@lopt.command("panel")
@theta_option()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Evaluation folder (reused: only what is missing runs).")
@click.option("--set", "sets", multiple=True, help="key=value: a PanelSettings field (e.g. per_family=1).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--no-progress", is_flag=True)
def panel_cmd(theta, out_dir, sets, as_json, no_progress):
    """Score θ on the quality panel: fixed held-out tasks against cached AdamLR baselines."""
    # deferred: see meta_train_cmd
    from lopt_trainer.common.folder_lock import folder_lock
    from lopt_trainer.common.run_files import clean_json, write_command
    from lopt_trainer.evaluation.panel import PanelSettings, evaluate_panel, panel_tasks
    from lopt_trainer.meta.config import parse_sets
    from lopt_trainer.theta.load import load_theta

    try:
        settings = PanelSettings.from_dict(parse_sets(sets))
    except (TypeError, ValueError) as e:
        raise click.UsageError(str(e)) from None
    with folder_lock(out_dir, "evaluation folder"):
        figures = evaluate_panel(load_theta(theta), panel_tasks(settings), settings, out_dir,
                                 progress=not no_progress)
        write_command(out_dir)
    if as_json:
        click.echo(json.dumps(clean_json({"theta": theta_label(theta), **figures}), sort_keys=True, allow_nan=False))
    else:
        for k, v in figures.items():
            if k != "task_scores":
                click.echo(f"{k:20s} {_fmt(v)}")
        click.echo("task scores (improvement over Global AdamLR, clipped to ±3; > 0: θ better):")
        for tid, v in sorted((figures.get("task_scores") or {}).items()):
            click.echo(f"  {tid:42s} {_fmt(v)}")
        click.echo("legend: score = mean task score; beats_global / beats_per_task = fraction of tasks where θ's final "
                   "test loss is below Global AdamLR's / per-task AdamLR@14's; median_improvement over Global "
                   "AdamLR; diverged = θ runs that diverged. For choosing θ use the yardstick: "
                   "`taskgen lopt eval --on valid`.")


@lopt.command("interpolate")
@theta_option("--from", "theta_a", default="handset", show_default=True, help="θ at alpha = 0.")
@theta_option("--to", "theta_b", default=None, required=True, help="θ at alpha = 1 (meta-trained from --from).")
@click.option("--alpha", type=FINITE_FLOAT, required=True,
              help="Weight of --to: 0 gives --from, 1 gives --to, between them a mixture (WiSE-FT).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="The θ file to write (.npz, reference layout; written atomically).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def interpolate_cmd(theta_a, theta_b, alpha, out, overwrite, as_json):
    """Write the θ (1 − alpha)·FROM + alpha·TO: a weight-space mixture of a meta-trained θ with the θ it started
    from, which keeps part of the start's robustness (Wortsman et al. 2022, WiSE-FT)."""
    from pathlib import Path

    from lopt_trainer.errors import ThetaFileError
    from lopt_trainer.theta.interpolate import interpolate_theta  # deferred: see meta_train_cmd
    from lopt_trainer.theta.load import load_theta, theta_digest
    from lopt_trainer.theta.reference_io import save_reference_npz
    from lopt_trainer.theta.shipped import data_path

    dest = Path(out).resolve()
    if dest.suffix != ".npz":
        raise click.BadParameter(f"{out!r}: a θ file name ends in .npz", param_hint="--out")
    if any(Path(t).exists() and Path(t).resolve() == dest for t in (theta_a, theta_b)):
        raise click.BadParameter(f"{out!r} is one of the θ it is made from; write the mixture to another file",
                                 param_hint="--out")
    if data_path().resolve() in dest.parents:
        raise click.BadParameter(f"{out!r} is inside the package's data folder: only the ship gate "
                                 "(`make ship`, in a checkout) writes the shipped θ", param_hint="--out")
    if dest.exists() and not overwrite:
        raise click.BadParameter(f"{out!r} exists; pass --overwrite to replace it", param_hint="--out")
    a_label, b_label = theta_label(theta_a), theta_label(theta_b)
    theta_from, theta_to = load_theta(theta_a), load_theta(theta_b)  # a damaged θ is named by the loader
    try:
        theta = interpolate_theta(theta_from, theta_to, alpha, source_a=a_label, source_b=b_label)
    except ThetaFileError:
        raise  # two θ of different shapes: the error names both sources and the array
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--alpha") from None
    save_reference_npz(theta, dest)
    result = {"out": str(dest), "from": a_label, "to": b_label, "alpha": alpha, "theta_digest": theta_digest(theta)}
    click.echo(json.dumps(result, sort_keys=True) if as_json else
               f"wrote {dest}: θ = {1 - alpha:g}·{a_label} + {alpha:g}·{b_label} (digest {result['theta_digest']})")


# ---------------------------------------------------------------------------------------------------- train

@click.command("train")
@click.argument("task_id")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adam", show_default=True,
              help="adam: one learning rate; adamlr/adam8p/opt_list: N trials in one vmapped run, best reported; "
                   "lopt: the learned optimizer with --theta.")
@click.option("--lr", type=POSITIVE_FLOAT, default=1e-3, show_default=True,
              help="Learning rate for --optimizer adam.")
@click.option("--steps", type=NON_NEGATIVE_INT64, default=1000, show_default=True)
@click.option("--trials", type=POSITIVE_INT64, default=None,
              help="Trials for adamlr (grid size, default 14), adam8p (random draws, default 10) and opt_list "
                   "(first N, default 10).")
@click.option("--trial-seed", type=SEED, default=0, show_default=True, help="Seed of the Adam8p random search.")
@theta_option(help="For --optimizer lopt.")
@click.option("--suite", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Spec file or manifest holding TASK_ID (default: the shipped suite).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Init and data-order seed.")
@click.option("--eval-every", type=POSITIVE_INT64, default=None, help="Steps between curve points "
              "(default steps/20).")
@click.option("--eval-batches", type=POSITIVE_INT64, default=None, help="Random batches of a split averaged per "
              "curve point and for the final losses (default 4).")
@click.option("--valid-every", type=POSITIVE_INT64, default=None,
              help="Validation-feed period for the learned optimizer (default 10).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="train_runs", show_default=True,
              help="Directory for the curves (.json, .arrow, .png).")
@click.option("--plot", is_flag=True, help="Also write a PNG of the curves.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def train(task_id, optimizer, lr, steps, trials, trial_seed, theta, suite, seed, eval_every, eval_batches,
          valid_every, out_dir, plot, as_json):
    """Train TASK_ID with a baseline optimizer or the learned optimizer; save and print its loss curves."""
    # deferred: see meta_train_cmd
    import taskgen
    from lopt_trainer.app.train_task import run_training

    try:
        spec = taskgen.resolve_spec(task_id, suite=suite)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0]) if exc.args else str(exc)) from exc
    task = taskgen.build_task(spec)
    summary = run_training(task, optimizer, steps, lr=lr, trials=trials, trial_seed=trial_seed, seed=seed,
                           theta_path=theta, eval_every=eval_every, eval_batches=eval_batches,
                           valid_every=valid_every, out_dir=out_dir, plot=plot, progress=not as_json)
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
        return
    click.echo(f"task {summary['task_id']}  optimizer {optimizer}  steps {steps}  seed {seed}")
    if summary["best_trial"] is not None:
        click.echo(f"best of {summary['trials']} trials: #{summary['best_trial']} {summary['hparams']}  "
                   f"({summary['diverged_trials']} diverged)")
    click.echo(f"{'split':<12} {'final loss':>12} {'normalised':>12}")
    for s, v in summary["final"].items():
        n = summary["final_normalized"][s]
        click.echo(f"{s:<12} {_fmt(v):>12} {_fmt(n):>12}")
    from lopt_trainer.inner.loop import DEFAULT_EVAL_BATCHES  # deferred: see meta_train_cmd

    click.echo(f"each loss: the mean over {eval_batches or DEFAULT_EVAL_BATCHES} random batches of {task.batch_size} "
               f"example(s) of its split after step {steps} (--eval-batches); normalised: the family's normaliser "
               "(lower is better, comparable across families: an untrained model ~1-10, a perfect classifier "
               "below 0)")
    click.echo(f"diverged: {summary['diverged']}   wall {summary['wall_time_s']:.2f}s "
               f"(compile {summary['compile_time_s']:.2f}s)")
    for f in summary["files"]:
        click.echo(f"wrote {f}")


def _fmt(v):
    return "nan" if v is None else str(v) if isinstance(v, (int, str)) else f"{v:.5g}"
