"""Train one task with a baseline or the learned optimizer and save its curves: the work of ``taskgen train``.

The click command (:func:`lopt_trainer.cli.train`) only parses options and resolves the task;
:func:`run_training` does the work on a :class:`families.base.Task` (so it can be called and tested without a
suite).
"""

from __future__ import annotations

import os
import re

import click
import numpy as np

from lopt_trainer.pretrained import resolve_theta_path

OPTIMIZER_CHOICES = ("adam", "adamlr", "adam8p", "opt_list", "lopt")


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text) or "task"


def _select_best(result, split: str) -> int:
    from lopt_trainer.selection import select_per_task

    table = np.asarray(result.final_normalized[split])[:, 0][None, :]  # [1 task, trials], first seed
    return int(select_per_task(table)[0][0])


def run_training(
    task,
    optimizer: str = "adam",
    steps: int = 1000,
    *,
    lr: float = 1e-3,
    trials: int | None = None,
    trial_seed: int = 0,
    seed: int = 0,
    theta_path: str | None = None,
    eval_every: int | None = None,
    eval_batches: int | None = None,
    valid_every: int | None = None,
    select_split: str = "inner_valid",
    out_dir: str | None = None,
    plot: bool = False,
    progress: bool = True,
) -> dict:
    """Train ``task`` with ``optimizer`` and write its curves; the core of ``taskgen train``.

    ``optimizer``: ``adam`` (one run at ``lr``), ``adamlr`` / ``adam8p`` / ``opt_list`` (``trials`` trials as one
    vmapped run — AdamLR's grid, Adam8p draws seeded by ``trial_seed``, opt_list's first N — and the best by
    final normalised ``select_split`` loss is reported), or ``lopt`` (θ from the reference-layout ``.npz`` at
    ``theta_path``). Curves go to ``out_dir`` as ``<task>.<optimizer>.seed<S>.json`` and ``.arrow`` (and ``.png``
    with ``plot``). Returns a summary dict: task_id, optimizer, steps, seed, best_trial, hparams, final,
    final_normalized, diverged, wall_time_s, compile_time_s, files.
    """
    from lopt_trainer import baselines, curves, inner_loop
    from taskgen.jax_cache import enable_compilation_cache

    if optimizer not in OPTIMIZER_CHOICES:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {OPTIMIZER_CHOICES}")
    enable_compilation_cache()
    loop_kw = {"eval_every": eval_every}
    if eval_batches is not None:
        loop_kw["eval_batches"] = eval_batches
    if valid_every is not None:
        loop_kw["valid_every"] = valid_every

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, unit="step", desc=f"{optimizer}", leave=False)

    def on_progress(done, total):
        if bar is not None:
            bar.update(done - bar.n)

    try:
        if optimizer == "lopt":
            theta_path = resolve_theta_path(theta_path)
            factory, theta = _lopt_factory_and_theta(theta_path)
            result = inner_loop.train(task, factory, steps, hparams=theta, seed=seed, progress=on_progress,
                                      name="lopt", **loop_kw)
            result.meta["theta"] = os.path.abspath(theta_path)
            single, best, hparams = result, None, None
        elif optimizer == "adam":
            hparams = {"learning_rate": float(lr)}
            result = inner_loop.train(task, baselines.optimizer_factory("adam", steps), steps, hparams=hparams,
                                      seed=seed, progress=on_progress, name="adam", **loop_kw)
            single, best = result, None
        else:
            grid = baselines.trial_grid(optimizer, trials, seed=trial_seed)
            result = inner_loop.train_many(task, baselines.optimizer_factory(optimizer, steps), grid, [seed], steps,
                                           progress=on_progress, name=optimizer, **loop_kw)
            best = _select_best(result, select_split)
            single, hparams = result.index(best, 0), grid[best]
    finally:
        if bar is not None:
            bar.close()

    files = []
    if out_dir is not None:
        stem = os.path.join(out_dir, f"{_safe_name(str(result.meta.get('task_id') or 'task'))}.{optimizer}.seed{seed}")
        result.meta["best_trial"] = best
        files.append(curves.write_json(result, stem + ".json"))
        files.append(curves.write_arrow(result, stem + ".arrow"))
        if plot:
            n_seeds = result.batch_shape[1] if best is not None else 1
            files.append(curves.plot(result, stem + ".png", highlight=None if best is None else best * n_seeds,
                                     title=f"{result.meta.get('task_id')} — {optimizer}"
                                           + (f" (best trial {best})" if best is not None else "")))
    return {
        "task_id": result.meta.get("task_id"),
        "optimizer": optimizer,
        "steps": steps,
        "seed": seed,
        "trials": None if best is None else int(result.batch_shape[0]),
        "best_trial": best,
        "hparams": hparams,
        "final": {s: _num(v) for s, v in single.final.items()},
        "final_normalized": {s: _num(v) for s, v in single.final_normalized.items()},
        "diverged": bool(single.diverged),
        "diverged_trials": None if best is None else int(np.sum(result.diverged)),
        "wall_time_s": round(float(result.wall_time), 3),
        "compile_time_s": round(float(result.compile_time), 3),
        "files": files,
    }


def _num(x):
    x = float(x)
    return x if np.isfinite(x) else None


def _lopt_factory_and_theta(theta_path):
    """``(optax_lopt, θ)`` for the loop's factory form, so θ is a jit argument (no recompilation per θ)."""
    try:
        from lopt_trainer.optax_api import optax_lopt
        from lopt_trainer.reference_io import load_reference_npz
    except ImportError as exc:  # the learned optimizer lives in other modules of this package
        raise click.ClickException(f"the learned optimizer is not available: {exc}") from exc
    return optax_lopt, load_reference_npz(theta_path)
