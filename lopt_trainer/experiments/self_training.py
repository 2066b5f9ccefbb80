"""Training itself: meta-train a fresh learned optimizer with a trained one as the OUTER optimizer.

Three meta-training runs from the same seed (same initial θ, same task draws): the outer optimizer is (1) the
trained learned optimizer θ* through its optax drop-in (``outer_opt = "lopt:PATH"``), (2) and (3) Adam at two
learning rates (with the usual global-norm clipping). Their meta-loss curves are plotted together. The runs use
:func:`lopt_trainer.meta.meta_train` unchanged; each lives in its own folder under ``OUT`` (``lopt_outer/``,
``adam_lr<lr>/``) with its ``config.json``, ``metrics.jsonl`` and checkpoint, so an interrupted experiment
resumes.

The default is small (a few minutes on two CPU cores): low-dimensional quadratics of the ``meta_train`` split,
truncation 10, 4 problems per estimate, horizons 50-200, 60 outer steps. Everything is overridable (``overrides``
takes any :class:`~lopt_trainer.meta.config.MetaTrainConfig` field).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

import taskgen
from lopt_trainer.common.folder_lock import folder_lock
from lopt_trainer.common.run_files import write_json
from lopt_trainer.common.task_pool import filter_specs, load_pool
from lopt_trainer.meta.config import MetaTrainConfig
from lopt_trainer.meta.metrics import read_metrics
from lopt_trainer.meta.trainer import meta_train
from lopt_trainer.theta.names import theta_label

RESULT_FILE, PLOT_FILE = "self_training.json", "self_training.png"
DEFAULT_ADAM_LRS = (3e-4, 1e-3)
DEFAULT_META = {
    "filters": {"family": ["quadratic"], "split": ["meta_train"]}, "max_params": 64, "truncation": 10,
    "tasks_per_group": 4, "horizon_min": 50, "horizon_max": 200, "resample_every": 20, "eval_every": 0,
    "checkpoint_every": 20, "steps": 60, "theta_init": "random",
}
"""Meta-training settings of the small default run (any other field keeps the MetaTrainConfig default). The fresh θ
starts from a random init, as in the paper: the question is whether the learned optimizer can train one from
scratch."""


def run_name(outer: str, lr: float | None = None) -> str:
    """Folder name of one run: ``lopt_outer`` or ``adam_lr<lr>``."""
    return "lopt_outer" if outer == "lopt" else f"adam_lr{lr:.0e}"


def default_specs():
    """Specs of the default suite; if it is not installed, 64 quadratics generated with seed 0 (documented
    fallback so the experiment runs on a bare checkout)."""
    path = taskgen.default_suite_path()
    if path.exists():
        return taskgen.load_specs(path)
    return taskgen.generate_suite(["quadratic"], per_family=64, seed=0)


def run_self_training(theta_path, out_dir, *, adam_lrs=DEFAULT_ADAM_LRS, steps: int | None = None,
                      overrides: dict | None = None, seed: int = 0, specs=None, suite=None, manifest=None,
                      resume: bool = True, progress: bool = True) -> dict:
    """Run the three meta-trainings into ``out_dir`` and write ``self_training.json`` / ``.png``.

    ``theta_path``: the trained θ (any name of :mod:`lopt_trainer.theta.names`: a ``.npz``, a run folder, a
    checkpoint, ``pretrained``, ``handset``, ``random``). ``specs`` (Python) or
    ``suite`` / ``manifest`` choose the task pool (default: :func:`default_specs`). Returns the summary dict
    (per run: outer optimizer, learning rate, steps, first/last-10% mean meta-loss). ``out_dir`` is locked
    while the experiment runs (:mod:`lopt_trainer.common.folder_lock`).
    """
    out_dir = Path(out_dir)
    with folder_lock(out_dir):
        return _self_training(theta_path, out_dir, adam_lrs, base_config(overrides, steps, seed), specs, suite,
                              manifest, resume, progress)


def base_config(overrides: dict | None = None, steps: int | None = None, seed: int = 0) -> MetaTrainConfig:
    """The meta-training settings shared by the three runs: :data:`DEFAULT_META` < ``overrides`` < ``steps`` and
    ``seed``; ``ValueError`` / ``TypeError`` name a bad setting."""
    settings = {**DEFAULT_META, **(overrides or {}), "seed": seed}
    if steps is not None:
        settings["steps"] = steps
    return MetaTrainConfig.from_dict(settings)


def _self_training(theta_path, out_dir: Path, adam_lrs, base: MetaTrainConfig, specs, suite, manifest,
                   resume: bool, progress: bool) -> dict:
    """The body of :func:`run_self_training` once ``out_dir`` is locked."""
    if specs is None:
        if suite or manifest:
            specs = load_pool(suite, manifest)
        else:
            specs = default_specs()
    train_specs = filter_specs(specs, base.filters, base.max_params, base.max_flops,
                               family_limits=base.family_limits)
    if not train_specs:
        raise ValueError(f"no spec passes filters {base.filters} (max_params {base.max_params})")
    runs = [("lopt", None, f"lopt:{theta_label(theta_path)}")]
    runs += [("adam", float(lr), "adam") for lr in adam_lrs]
    summary = {"settings": base.to_dict(), "theta_path": theta_label(theta_path), "runs": []}
    for outer, lr, outer_opt in runs:
        cfg = dataclasses.replace(base, outer_opt=outer_opt, outer_lr=lr if lr is not None else base.outer_lr)
        run_dir = out_dir / run_name(outer, lr)
        meta_train(cfg, run_dir, resume=resume, specs=train_specs, eval_specs=[], progress=progress)
        summary["runs"].append(run_summary(run_dir, outer, lr))
    write_json(out_dir / RESULT_FILE, summary)
    plot_self_training(out_dir, summary, out_dir / PLOT_FILE)
    return summary


def meta_loss_series(run_dir) -> tuple[np.ndarray, np.ndarray]:
    """``(outer steps, meta-losses)`` of a run's ``metrics.jsonl`` (step records only)."""
    pts = [(r["step"], r["meta_loss"]) for r in read_metrics(run_dir)
           if r.get("kind") == "step" and r.get("meta_loss") is not None]
    return np.asarray([p[0] for p in pts], np.int64), np.asarray([p[1] for p in pts], np.float64)


def run_summary(run_dir, outer: str, lr: float | None) -> dict:
    """One run's line of the summary: mean meta-loss over the first and the last 10% of its steps."""
    x, y = meta_loss_series(run_dir)
    k = max(1, len(y) // 10)
    return {"name": run_name(outer, lr), "outer": outer, "outer_lr": lr, "steps": int(len(y)),
            "first_meta_loss": float(np.mean(y[:k])) if len(y) else None,
            "final_meta_loss": float(np.mean(y[-k:])) if len(y) else None,
            "min_meta_loss": float(np.min(y)) if len(y) else None, "dir": Path(run_dir).name}


def _smooth(y: np.ndarray) -> np.ndarray:
    w = max(1, len(y) // 15)
    c = np.cumsum(np.insert(y, 0, 0.0))
    return np.asarray([(c[i + 1] - c[max(0, i + 1 - w)]) / (i + 1 - max(0, i + 1 - w)) for i in range(len(y))])


def plot_self_training(out_dir, summary: dict, path) -> Path:
    """Left: the three meta-loss curves (raw, faint; running mean, solid). Right: each run's meta-loss minus the
    mean of the runs at the same step — the runs share seed, task draws and perturbations, so this paired
    difference removes the task-to-task noise that dominates short runs."""
    import matplotlib  # optional heavy dependency: imported only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = []
    for run in summary["runs"]:
        x, y = meta_loss_series(Path(out_dir) / run["dir"])
        name = "learned optimizer (θ*)" if run["outer"] == "lopt" else f"Adam lr {run['outer_lr']:g}"
        series.append((name, x, y))
    fig, (ax, axd) = plt.subplots(1, 2, figsize=(12, 4.5))
    common = sorted(set.intersection(*[set(x.tolist()) for _, x, y in series if len(y)])) if series else []
    mean = None
    if common:
        mean = np.mean([[dict(zip(x.tolist(), y))[s] for s in common] for _, x, y in series if len(y)], axis=0)
    for name, x, y in series:
        if not len(y):
            continue
        line, = ax.plot(x, y, lw=0.7, alpha=0.3)
        ax.plot(x, _smooth(y), lw=1.8, color=line.get_color(), label=f"outer: {name}")
        if mean is not None:
            d = np.asarray([dict(zip(x.tolist(), y))[s] for s in common]) - mean
            axd.plot(common, _smooth(d), lw=1.8, color=line.get_color(), label=name)
    ax.set_xlabel("outer step")
    ax.set_ylabel("meta-loss (mean normalised inner loss)")
    ax.set_title("meta-loss")
    ax.legend(fontsize=8)
    axd.axhline(0.0, color="gray", ls="--", lw=1)
    axd.set_xlabel("outer step")
    axd.set_ylabel("meta-loss − mean of the runs (same tasks)")
    axd.set_title("paired difference (lower is better)")
    fig.suptitle("Meta-training a fresh learned optimizer: learned vs Adam outer optimizer")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
