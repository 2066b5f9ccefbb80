"""``taskgen lopt …``: the meta-training command line (a click group; also ``python -m lopt_trainer.meta.cli``).

    taskgen lopt meta-train --manifest M.arrow --filter family=quadratic --filter split=meta_train \\
        --max-params 5000 --steps 500 --out runs/q1 [--resume] [--workers 2 [--address ray://host:10001]] \\
        [--config settings.toml] [--set sigma=0.03 --set truncation=20]
    taskgen lopt plot runs/q1

Precedence: built-in defaults < ``--config`` file < ``--set`` < explicit flags. The resolved config is written to
``RUN/config.json``. ``--resume`` continues from ``RUN/checkpoint.msgpack`` with the stored settings (``--steps``
and the worker flags may change; ``--allow-change`` lets the settings in ``meta.resume.SAFE`` change; any other
differing setting is refused, see :mod:`lopt_trainer.meta.resume`).
"""

from __future__ import annotations

import json
import sys

import click

from lopt_trainer.eval_cli import eval_cmd, implicit_reg_cmd, self_train_cmd


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _file_keys(path) -> list:
    """The setting names a ``--config`` file sets."""
    from lopt_trainer.meta.config import read_config_dict

    return list(read_config_dict(path))


@click.group("lopt")
def lopt():
    """Meta-train learned optimizers and look at the runs."""


@lopt.command("meta-train")
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False), help="Arrow/Parquet manifest of tasks.")
@click.option("--suite", type=click.Path(exists=True, dir_okay=False), help="Spec file (JSONL); default suite if "
              "neither --manifest nor --suite is given.")
@click.option("--filter", "filters", multiple=True, help="column=value (family, split, dataset, variant, task_id);"
              " repeat a column for alternatives. Default: split=meta_train.")
@click.option("--max-params", type=int, help="Keep tasks with at most this many parameters.")
@click.option("--max-flops", type=int, help="Keep tasks with at most this many FLOPs per step.")
@click.option("--steps", type=int, help="Outer steps in all (a resumed run continues up to this).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Run folder.")
@click.option("--resume", is_flag=True, help="Continue from RUN/checkpoint.msgpack if present, with the run's "
              "settings: a setting given that differs from the run's is refused (--steps and the worker flags "
              "excepted), as is a changed task list.")
@click.option("--allow-change", is_flag=True, help="With --resume: allow changing the settings that are safe to "
              "change mid-run (checkpoint_every, eval_every, eval_tasks, eval_steps, compilation_cache, plugins); "
              "the estimator, sigma, truncation, horizons, tasks, outer optimizer, seed and θ sizes never change.")
@click.option("--workers", type=int, help="Ray gradient workers (0 = in process).")
@click.option("--address", help="Existing Ray cluster (e.g. ray://host:10001); default: a local cluster bound to "
              "127.0.0.1.")
@click.option("--pin-workers", is_flag=True, default=None, help="Pin local Ray workers one per core.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="Settings file (.json or .toml) with MetaTrainConfig fields.")
@click.option("--set", "sets", multiple=True, help="key=value override of any setting (value parsed as JSON).")
@click.option("--seed", type=int)
@click.option("--lopt", "lopt_name", help="'hierarchical' (default) or module:factory.")
@click.option("--init-theta", type=click.Path(exists=True),
              help="Start from this θ (run folder, checkpoint or reference .npz) instead of a random one.")
@click.option("--plugin", "plugins", multiple=True, help="Module to import first (registers user families).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def meta_train_cmd(manifest, suite, filters, max_params, max_flops, steps, out, resume, allow_change, workers,
                   address, pin_workers, config_file, sets, seed, lopt_name, init_theta, plugins, no_progress):
    """Meta-train a learned optimizer with truncated PES/ES."""
    from lopt_trainer.meta.config import MetaTrainConfig, load_config
    from lopt_trainer.meta.task_sampler import parse_filters
    from lopt_trainer.meta.trainer import meta_train

    cfg = load_config(config_file).to_dict() if config_file else MetaTrainConfig().to_dict()
    given = set(_file_keys(config_file)) if config_file else set()  # what the user said, checked on --resume
    for item in sets:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} must look like key=value", param_hint="--set")
        k, v = item.split("=", 1)
        cfg[k.strip()] = _parse_value(v)
        given.add(k.strip())
    explicit = {"manifest": manifest, "suite": suite, "max_params": max_params, "max_flops": max_flops,
                "steps": steps, "workers": workers, "address": address, "pin_workers": pin_workers,
                "seed": seed, "lopt": lopt_name, "init_theta": init_theta}
    cfg.update({k: v for k, v in explicit.items() if v is not None})
    given.update(k for k, v in explicit.items() if v is not None)
    if filters:
        cfg["filters"] = parse_filters(filters)
        given.add("filters")
    if plugins:
        cfg["plugins"] = list(cfg.get("plugins") or []) + list(plugins)
        given.add("plugins")
    try:
        config = MetaTrainConfig.from_dict(cfg)
    except (TypeError, ValueError) as e:
        raise click.UsageError(str(e)) from None
    result = meta_train(config, out, resume=resume, progress=not no_progress, given_keys=given,
                        allow_change=allow_change)
    state = result.state
    click.echo(json.dumps({"run": str(result.run_dir), "step": state.step, "interrupted": result.interrupted}))
    if result.interrupted:
        sys.exit(130)


@lopt.command("plot")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out", type=click.Path(file_okay=False), help="Folder for the PNGs (default: RUN).")
def plot_cmd(run, out):
    """Write PNG curves (meta-loss, gradient norm, throughput, held-out evaluation) of a run."""
    from lopt_trainer.meta.metrics import plot_run

    for path in plot_run(run, out):
        click.echo(str(path))


lopt.add_command(eval_cmd, "eval")
lopt.add_command(implicit_reg_cmd, "implicit-reg")
lopt.add_command(self_train_cmd, "self-train")

if __name__ == "__main__":
    lopt()
