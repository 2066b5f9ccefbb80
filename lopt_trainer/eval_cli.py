"""``taskgen lopt eval``, ``taskgen lopt implicit-reg`` and ``taskgen lopt self-train`` (click commands).

    taskgen lopt eval --theta THETA.npz --tasks 100 --seeds 2 --steps 1000 --trials 1,10 --out runs/eval \\
        [--suite S.jsonl | --manifest M.arrow] [--filter family=quadratic] [--max-params 20000] \\
        [--workers 2] [--resume]
    taskgen lopt implicit-reg --theta THETA.npz --steps 1000 --out runs/implicit_reg
    taskgen lopt self-train --theta THETA.npz --steps 60 --out runs/self_training [--adam-lr 3e-4 --adam-lr 1e-3]

``--theta`` takes a reference-layout ``.npz`` or a meta-training run folder (its checkpoint). Each command
records its command line in ``OUT/command.json`` (shown by ``taskgen report``). The objects to attach to the
``lopt`` group are :data:`eval_cmd`, :data:`implicit_reg_cmd` and :data:`self_train_cmd`.
"""

from __future__ import annotations

import json
import sys

import click

from lopt_trainer.pretrained import resolve_theta_path

THETA_HELP = ("Learned-optimizer θ: a reference-layout .npz, or a meta-training run folder / checkpoint "
              "(default: the pretrained θ shipped with the package).")



def _int_list(text: str) -> tuple:
    try:
        out = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of integers") from None
    if not out or min(out) < 1:
        raise click.BadParameter("need at least one budget, each >= 1")
    return out


def _set_values(items) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} must look like key=value", param_hint="--set")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


@click.command("eval")
@click.option("--theta", "theta_path", default=None, type=click.Path(exists=True), help=THETA_HELP)
@click.option("--suite", type=click.Path(exists=True, dir_okay=False), help="Spec file (default: the shipped suite).")
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False), help="Arrow/Parquet manifest instead.")
@click.option("--tasks", "n_tasks", type=click.IntRange(min=1), default=100, show_default=True,
              help="Tasks in all: half seen (meta_train), half unseen (meta_test).")
@click.option("--task-seed", type=int, default=0, show_default=True, help="Seed of the task selection.")
@click.option("--filter", "filters", multiple=True, help="column=value over family, dataset, variant, task_id.")
@click.option("--max-params", type=int, default=20_000, show_default=True, help="Skip larger tasks (-1: no limit).")
@click.option("--max-flops", type=int, default=5_000_000, show_default=True,
              help="Skip tasks with more FLOPs per step (-1: no limit).")
@click.option("--seeds", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--trials", default="1,10", show_default=True,
              help="Per-task trial budgets of Adam8p and opt_list (comma-separated).")
@click.option("--adamlr-trials", type=click.IntRange(min=1), default=14, show_default=True,
              help="AdamLR grid size (1e-7 … 10^-0.5).")
@click.option("--trial-seed", type=int, default=0, show_default=True, help="Seed of the Adam8p random search.")
@click.option("--baselines", default="adamlr,adam8p,opt_list", show_default=True,
              help="Comma-separated baselines to run.")
@click.option("--eval-every", type=click.IntRange(min=1), default=None, help="Curve spacing (default steps/20).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Ray workers (0 = in this process).")
@click.option("--address", default=None, help="Existing Ray cluster (default: a local one on 127.0.0.1).")
@click.option("--resume", is_flag=True, help="Reuse the runs already in --out.")
@click.option("--no-progress", is_flag=True)
def eval_cmd(theta_path, suite, manifest, n_tasks, task_seed, filters, max_params, max_flops, seeds, steps, trials,
             adamlr_trials, trial_seed, baselines, eval_every, out_dir, workers, address, resume, no_progress):
    """Evaluate a learned optimizer θ against Global / per-task AdamLR, Adam8p and opt_list."""
    theta_path = resolve_theta_path(theta_path)
    from lopt_trainer.evaluation.records import write_command
    from lopt_trainer.evaluation.runner import EvaluationExists, load_theta, run_evaluation
    from lopt_trainer.evaluation.runs import EvalSettings
    from lopt_trainer.evaluation.tasks import held_out_variants, load_pool, select_tasks
    from lopt_trainer.meta.task_sampler import parse_filters

    try:
        settings = EvalSettings(steps=steps, seeds=seeds, trials=_int_list(trials), adamlr_trials=adamlr_trials,
                                trial_seed=trial_seed, eval_every=eval_every,
                                baselines=tuple(b.strip() for b in baselines.split(",") if b.strip()))
        flt = parse_filters(filters)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    pool = load_pool(suite, manifest)
    tasks = select_tasks(pool, n_tasks, task_seed, max_params=None if max_params < 0 else max_params,
                         max_flops=None if max_flops < 0 else max_flops, filters=flt)
    if not tasks:
        raise click.ClickException("no task passes the filters")
    held = held_out_variants(tasks, pool)
    click.echo(f"{sum(t.group == 'seen' for t in tasks)} seen + {sum(t.group == 'unseen' for t in tasks)} unseen "
               f"tasks; held-out variants among the unseen: {', '.join(held) or 'none'}", err=True)
    try:
        summary = run_evaluation(load_theta(theta_path), tasks, out_dir, settings, workers=workers, address=address,
                                 resume=resume, theta_path=theta_path, progress=not no_progress)
    except EvaluationExists as e:
        raise click.ClickException(str(e)) from None
    write_command(out_dir)
    for r in summary["rows"]:
        click.echo(f"{r['optimizer']:<22} {r['group']:<7} n={r['n_tasks']:<4} median improvement "
                   f"{r['final']['median']:+.3f}  learned better on {100 * r['frac_lopt_better']:.0f}%")
    click.echo(f"wrote {out_dir}/results.arrow, eval_summary.json, boxplot_final.png, boxplot_auc.png")


@click.command("implicit-reg")
@click.option("--theta", "theta_path", default=None, type=click.Path(exists=True), help=THETA_HELP)
@click.option("--steps", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--adam-lr", type=float, default=0.05, show_default=True)
@click.option("--start", "starts", multiple=True, help="Start point 'x,y' (repeat; default: 6 fixed points).")
@click.option("--valid-every", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
def implicit_reg_cmd(theta_path, steps, adam_lr, starts, valid_every, out_dir):
    """Trajectories of Adam and the learned optimizer on (x − y)²; final distances to the origin."""
    theta_path = resolve_theta_path(theta_path)
    from lopt_trainer.evaluation.records import write_command
    from lopt_trainer.evaluation.runner import load_theta
    from lopt_trainer.experiments.implicit_reg import DEFAULT_STARTS, run_implicit_reg

    pts = DEFAULT_STARTS
    if starts:
        try:
            pts = tuple(tuple(float(v) for v in s.split(",")) for s in starts)
        except ValueError:
            raise click.BadParameter("each --start must be 'x,y'") from None
        if any(len(p) != 2 for p in pts):
            raise click.BadParameter("each --start must be 'x,y'")
    write_command(out_dir)
    r = run_implicit_reg(load_theta(theta_path), out_dir, starts=pts, steps=steps, adam_lr=adam_lr,
                         valid_every=valid_every, theta_path=theta_path)
    click.echo(f"mean final distance to the origin: Adam {r['adam']['mean_final_norm']:.4g}, "
               f"learned {r['lopt']['mean_final_norm']:.4g} (projection onto the line: "
               f"{r['mean_projection_norm']:.4g})")
    click.echo(f"wrote {out_dir}/implicit_reg.json, implicit_reg.png")


@click.command("self-train")
@click.option("--theta", "theta_path", default=None, type=click.Path(exists=True), help=THETA_HELP)
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Outer steps per run (default 60).")
@click.option("--adam-lr", "adam_lrs", multiple=True, type=float, help="Adam outer learning rates "
              "(repeat; default 3e-4 and 1e-3).")
@click.option("--suite", type=click.Path(exists=True, dir_okay=False))
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--set", "sets", multiple=True, help="key=value: any meta-train setting (e.g. truncation=20, "
              "filters='{\"family\": [\"twod\"], \"split\": [\"meta_train\"]}').")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--no-progress", is_flag=True)
def self_train_cmd(theta_path, steps, adam_lrs, suite, manifest, sets, seed, out_dir, no_progress):
    """Meta-train a fresh learned optimizer with θ as outer optimizer, and with Adam at two learning rates."""
    theta_path = resolve_theta_path(theta_path)
    from lopt_trainer.evaluation.records import write_command
    from lopt_trainer.experiments.self_training import DEFAULT_ADAM_LRS, run_self_training

    write_command(out_dir)
    try:
        s = run_self_training(theta_path, out_dir, adam_lrs=adam_lrs or DEFAULT_ADAM_LRS, steps=steps,
                              overrides=_set_values(sets), seed=seed, suite=suite, manifest=manifest,
                              progress=not no_progress)
    except (TypeError, ValueError) as e:
        raise click.UsageError(str(e)) from None
    for r in s["runs"]:
        click.echo(f"{r['name']:<14} meta-loss {r['first_meta_loss']:.4g} -> {r['final_meta_loss']:.4g}")
    click.echo(f"wrote {out_dir}/self_training.json, self_training.png")


@click.group("lopt-eval")
def cli():
    """Stand-alone group of the three commands (``python -m lopt_trainer.eval_cli``)."""


cli.add_command(eval_cmd)
cli.add_command(implicit_reg_cmd)
cli.add_command(self_train_cmd)

if __name__ == "__main__":
    cli(sys.argv[1:])
