"""``make run``: the whole pipeline on an embedded default, in about ten minutes on a 2-core CPU.

Steps (each writes into ``--out`` and is skipped when its output is already there, so a rerun resumes):

1. fetch every dataset into the cache;
2. regenerate the default suite, check it is byte-identical to the frozen one, export its Arrow manifest;
3. build one task of every family on its real data and train it with Adam (loss before/after);
4. meta-train the hierarchical learned optimizer briefly (PES on one group of small MLP tasks, resumable), its
   panel scoring θ at the start and the end on held-out MLP tasks of the suite;
5. compare the meta-trained θ with its start and with the shipped θ on those held-out tasks (the yardstick's
   normalized loss, paired intervals, AdamLR baselines);
6. the implicit-regularisation experiment with the shipped θ;
7. "training itself": a fresh learned optimizer meta-trained with the shipped θ as outer optimizer, and with Adam;
8. write the HTML report and print its path.

Run from a checkout (``make run`` does)::

    python -m research.run_default --out runs/default [--meta-steps 400]
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

import datasets_cache
from lopt_trainer.app.run_text import end_lines
from lopt_trainer.common.folder_lock import folder_lock
from lopt_trainer.common.run_files import write_command, write_json
from lopt_trainer.errors import ResumeError
from lopt_trainer.evaluation import yardstick, yardstick_text
from lopt_trainer.evaluation.panel import panel_tasks
from lopt_trainer.evaluation.yardstick_files import results_payload, write_results
from lopt_trainer.inner.baselines import make_optimizer
from lopt_trainer.inner.loop import train
from lopt_trainer.meta import MetaTrainConfig, meta_train
from lopt_trainer.meta.metrics import read_metrics
from lopt_trainer.meta.trainer import THETA_FILE
from lopt_trainer.theta.load import load_theta
from lopt_trainer.theta.shipped import pretrained_path
from research.implicit_reg import run_implicit_reg
from research.report import write_report
from research.self_training import run_self_training
from taskgen.api import build_task, default_suite_path, load_specs
from taskgen.errors import TOOLKIT_PACKAGES, error_boundary
from taskgen.jax_cache import enable_compilation_cache
from taskgen.manifest import filter_manifest, load_manifest, specs_from_manifest, write_manifest
from taskgen.specfile import specs_to_jsonl
from taskgen.suite import generate_suite

META_STEPS = 400
EVAL_TASKS = 6


def _done(path: Path) -> bool:
    return path.exists()


def step_fetch_data(out: Path) -> None:
    """Fetch every dataset (a no-op for cached ones); record the sources."""
    rows = []
    for info in datasets_cache.list_datasets():
        t0 = time.perf_counter()
        path = datasets_cache.fetch(info.name, progress=False)
        rows.append({"dataset": info.name, "path": str(path), "seconds": round(time.perf_counter() - t0, 2)})
        click.echo(f"  {info.name:<14} {path}")
    write_json(out / "data.json", rows)


def step_suite(out: Path) -> None:
    """Regenerate the default suite, compare with the frozen file, and export the manifest."""
    t0 = time.perf_counter()
    specs = generate_suite()
    regenerated = specs_to_jsonl(specs)
    frozen = default_suite_path().read_bytes()
    same = regenerated == frozen
    (out / "suite.jsonl").write_bytes(regenerated)
    table = write_manifest(specs, out / "manifest.arrow")
    seconds = time.perf_counter() - t0
    counts = {}
    for s in specs:
        counts[s.split] = counts.get(s.split, 0) + 1
    write_json(out / "suite.json", {"specs": len(specs), "splits": counts, "identical_to_frozen": same,
                                     "seconds": seconds, "rows": table.num_rows})
    click.echo(f"  {len(specs)} specs {counts}; identical to the frozen suite: {same} ({seconds:.1f} s)")
    if not same:
        raise click.ClickException("the regenerated default suite differs from taskgen/suites/default-v1.jsonl")


def step_train_families(out: Path, steps: int = 200) -> None:
    """Train the cheapest meta_train task of every family with Adam and record the loss before and after."""
    table = filter_manifest(load_manifest(out / "manifest.arrow"), split="meta_train")
    rows = []
    for family in sorted(set(table["family"].to_pylist())):
        fam = filter_manifest(table, family=[family]).sort_by("flops_per_step")
        spec = specs_from_manifest(fam.slice(0, 1))[0]
        task = build_task(spec)
        lr = 1e-2 if family in ("quadratic", "twod") else 1e-3
        res = train(task, make_optimizer("adam", {"learning_rate": lr}, steps), steps, seed=0)
        row = {"family": family, "task_id": spec.task_id, "steps": steps, "lr": lr,
               "train_loss_first": float(res.losses["train"][0]), "train_loss_last": float(res.losses["train"][-1]),
               "diverged": bool(res.diverged)}
        rows.append(row)
        click.echo(f"  {family:<24} {spec.task_id}  train loss {row['train_loss_first']:.4g} -> "
                   f"{row['train_loss_last']:.4g}")
    write_json(out / "families.json", rows)


def meta_config(out: Path, steps: int) -> MetaTrainConfig:
    """The short run's settings: PES on one fixed group of 8 small MLP tasks of the suite (no resampling, so the
    meta-loss curve shows learning rather than task changes) with the recipe's outer-valid meta-loss, loss scaling,
    outer learning rate, element-wise clip and warm-up, judged by the panel on up to ``EVAL_TASKS`` held-out MLP
    tasks of the same suite at its start and its end."""
    return MetaTrainConfig(suite=str(out / "suite.jsonl"), filters={"split": ["meta_train"], "family": ["mlp"]},
                           max_params=5000, steps=steps, truncation=20, tasks_per_group=8, num_groups=1,
                           resample_every=100_000, horizon_min=100, horizon_max=400, outer_lr=3e-4,
                           meta_loss="outer_valid", loss_scale="initial", outer_clip=0.0, outer_clip_value=0.1,
                           outer_warmup=50, eval_every=50, eval_tasks=2, eval_steps=200, checkpoint_every=25,
                           panel_every=steps, panel={"on": "source", "max_tasks": EVAL_TASKS})


def step_meta_train(out: Path, steps: int) -> None:
    """The short meta-training run (resumable), ending with whether θ improved on its held-out tasks."""
    try:
        result = meta_train(meta_config(out, steps), out / "meta_train", resume=True)
    except ResumeError as e:  # made by an earlier release with other settings: this job's own folder, start again
        click.echo(f"  note: {out / 'meta_train'} holds a run with other settings ({str(e)[:120]}…); "
                   "starting it again")
        result = meta_train(meta_config(out, steps), out / "meta_train", overwrite=True)
    losses = [r["meta_loss"] for r in read_metrics(result.run_dir)
              if r.get("kind") == "step" and r.get("meta_loss") is not None]
    k = max(1, len(losses) // 10)
    click.echo(f"  θ after {result.state.step} outer steps: meta-loss {sum(losses[:k]) / k:.3f} (first {k}) -> "
               f"{sum(losses[-k:]) / k:.3f} (last {k}); {result.run_dir / THETA_FILE}")
    for line in end_lines(result):
        click.echo(f"  {line}")


def step_compare(out: Path, steps: int) -> None:
    """The meta-trained θ against its start (the hand-set θ) and the shipped θ on the run's held-out tasks (the
    panel's), in the paper's normalized loss with paired intervals, into ``out/compare``."""
    s = meta_config(out, steps).split()
    tasks = panel_tasks(s.panel, s.tasks.held_out(load_specs(s.tasks.path)))
    labels = ["meta-trained", "handset (start)", "shipped"]
    thetas = [load_theta(t) for t in (out / "meta_train" / THETA_FILE, "handset", pretrained_path())]
    set_name, results = yardstick.evaluate_many_on_tasks(thetas, tasks, what=f"held-out MLP tasks of {s.tasks.path}")
    payload = results_payload(labels, results, set_name)
    write_results(out / "compare", payload, labels, results)
    for comp in payload["comparisons"]:
        for line in yardstick_text.comparison_lines(comp["a"], comp["b"], comp, per_task=False):
            click.echo(f"  {line}")
    g = payload["summary"]["rows"]["global_adamlr"]["final"]["mean"]
    t = payload["summary"]["rows"]["theta"]["final"]["mean"]
    click.echo(f"  mean normalized loss: meta-trained θ {t['value']:.3f} [{t['low']:.3f}, {t['high']:.3f}], Global "
               f"AdamLR {g['value']:.3f} [{g['low']:.3f}, {g['high']:.3f}] (lower is better)")


def step_implicit_reg(out: Path, theta_path: Path) -> None:
    """Adam vs the learned optimizer on (x − y)²."""
    result = run_implicit_reg(load_theta(theta_path), out / "implicit_reg", theta_path=str(theta_path))
    click.echo(f"  final ‖p‖: Adam {result['adam']['mean_final_norm']:.3f}, "
               f"learned {result['lopt']['mean_final_norm']:.3f}")


def step_self_training(out: Path, theta_path: Path, steps: int = 100) -> None:
    """Meta-train a fresh learned optimizer with θ as the outer optimizer, and with Adam at two learning rates, on
    the same fixed MLP task group as the meta-training step (so the three curves differ only by outer optimizer)."""
    overrides = {"filters": {"split": ["meta_train"], "family": ["mlp"]}, "max_params": 3000, "truncation": 20,
                 "tasks_per_group": 8, "num_groups": 1, "resample_every": 100_000, "horizon_min": 100,
                 "horizon_max": 400, "panel_every": 0}
    summary = run_self_training(theta_path, out / "self_training", steps=steps, suite=str(out / "suite.jsonl"),
                                adam_lrs=(1e-3, 3e-3), overrides=overrides)
    for run in summary["runs"]:
        click.echo(f"  {run['name']:<16} meta-loss {run['first_meta_loss']:.3f} -> {run['final_meta_loss']:.3f}")


def record_command(out: Path) -> Path:
    """Write ``out/command.json``: the real command line, folder and UTC time (the report's header), noting
    ``make run`` when make started this process."""
    return write_command(out, extra={"make_target": "make run"} if os.environ.get("MAKELEVEL") else None)


@click.command()
@click.option("--out", default="runs/default", show_default=True, type=click.Path(file_okay=False))
@click.option("--meta-steps", default=META_STEPS, show_default=True, type=click.IntRange(1),
              help="Outer steps of the short meta-training run.")
def main(out, meta_steps):
    """Run the default pipeline into OUT and write OUT/report.html."""
    enable_compilation_cache()
    out = Path(out)
    own = (*TOOLKIT_PACKAGES, "lopt_trainer", "research")
    with error_boundary(packages=own), folder_lock(out):  # one `make run` per folder; its steps lock their subfolders
        _run_steps(out, meta_steps)


def _run_steps(out: Path, meta_steps: int) -> None:
    """The body of :func:`main` once ``out`` is locked."""
    record_command(out)
    theta_path = pretrained_path()
    steps = [
        ("fetch data", out / "data.json", lambda: step_fetch_data(out)),
        ("default suite", out / "suite.json", lambda: step_suite(out)),
        ("train one task per family", out / "families.json", lambda: step_train_families(out)),
        ("meta-train briefly", None, lambda: step_meta_train(out, meta_steps)),
        ("compare the meta-trained θ with its start and the shipped θ", out / "compare" / "yardstick.json",
         lambda: step_compare(out, meta_steps)),
        ("implicit regularisation", out / "implicit_reg" / "implicit_reg.json",
         lambda: step_implicit_reg(out, theta_path)),
        ("training itself (θ as the outer optimizer)", out / "self_training" / "self_training.json",
         lambda: step_self_training(out, theta_path)),
    ]
    for i, (name, marker, fn) in enumerate(steps, start=1):
        click.echo(f"[{i}/{len(steps) + 1}] {name}")
        if marker is not None and _done(marker):
            click.echo("  done already; skipped")
            continue
        t0 = time.perf_counter()
        fn()
        click.echo(f"  ({time.perf_counter() - t0:.0f} s)")
    click.echo(f"[{len(steps) + 1}/{len(steps) + 1}] report")
    report = write_report(out)
    click.echo(f"report: {report}")


if __name__ == "__main__":
    main()
