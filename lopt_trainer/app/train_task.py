"""Train one task with a baseline or the learned optimizer and save its curves: the work of ``taskgen train``.

The click command (:func:`lopt_trainer.app.cli.train`) only parses options and resolves the task;
:func:`run_training` does the work on a :class:`families.base.Task` (so it can be called and tested without a
suite).
"""

from __future__ import annotations

import os
import re

import numpy as np
from lopt_trainer.common.progress import progress_bar

from lopt_trainer.inner import baselines, curves, loop
from lopt_trainer.inner.names import LOPT, OPTIMIZERS
from lopt_trainer.inner.selection import select_per_task
from lopt_trainer.optimizer.optax_api import optax_lopt
from lopt_trainer.theta.load import load_theta
from lopt_trainer.theta.names import PRETRAINED, theta_label
from taskgen.jax_cache import enable_compilation_cache


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text) or "task"


def _select_best(result, split: str) -> int:
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
    final normalised ``select_split`` loss is reported), or ``lopt`` (θ named by ``theta_path``, any name
    :func:`~lopt_trainer.theta.load.load_theta` takes; default ``pretrained``). Curves go to ``out_dir`` as
    ``<task>.<optimizer>.seed<S>.json`` and ``.arrow`` (and ``.png`` with ``plot``). Returns a summary dict: task_id, optimizer, steps, seed, best_trial, hparams, final,
    final_normalized, diverged, wall_time_s, compile_time_s, files.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {OPTIMIZERS}")
    enable_compilation_cache()
    loop_kw = {k: v for k, v in (("eval_batches", eval_batches), ("valid_every", valid_every)) if v is not None}
    loop_kw["eval_every"] = eval_every

    bar = progress_bar(steps, f"{optimizer}", unit="step") if progress else None

    def on_progress(done, total):
        if bar is not None:
            bar.update(done - bar.n)

    try:
        if optimizer == LOPT:
            theta_path = theta_path or PRETRAINED
            # the factory form keeps θ a jit argument: no recompilation for another θ
            result = loop.train(task, optax_lopt, steps, hparams=load_theta(theta_path), seed=seed,
                                progress=on_progress, name=LOPT, **loop_kw)
            result.meta["theta"] = theta_label(theta_path)
            single, best, hparams = result, None, None
        elif optimizer == "adam":
            hparams = {"learning_rate": float(lr)}
            result = loop.train(task, baselines.optimizer_factory("adam", steps), steps, hparams=hparams,
                                seed=seed, progress=on_progress, name="adam", **loop_kw)
            single, best = result, None
        else:
            grid = baselines.trial_grid(optimizer, trials, seed=trial_seed)
            result = loop.train_many(task, baselines.optimizer_factory(optimizer, steps), grid, [seed], steps,
                                     progress=on_progress, name=optimizer, **loop_kw)
            best = _select_best(result, select_split)
            single, hparams = result.index(best, 0), grid[best]
    finally:
        if bar is not None:
            bar.close()

    files = [] if out_dir is None else write_outputs(result, optimizer, seed, best, out_dir, plot)
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


def write_outputs(result, optimizer: str, seed: int, best: int | None, out_dir, plot: bool) -> list[str]:
    """Write ``result``'s curves to ``out_dir`` as ``<task>.<optimizer>.seed<S>.json`` and ``.arrow`` (and a PNG
    with ``plot``, the best trial ``best`` highlighted); returns the paths."""
    files = []
    stem = os.path.join(out_dir, f"{_safe_name(str(result.meta.get('task_id') or 'task'))}.{optimizer}.seed{seed}")
    result.meta["best_trial"] = best
    files.append(curves.write_json(result, stem + ".json"))
    files.append(curves.write_arrow(result, stem + ".arrow"))
    if plot:
        n_seeds = result.batch_shape[1] if best is not None else 1
        files.append(curves.plot(result, stem + ".png", highlight=None if best is None else best * n_seeds,
                                 title=f"{result.meta.get('task_id')} — {optimizer}"
                                       + (f" (best trial {best})" if best is not None else "")))
    return files
