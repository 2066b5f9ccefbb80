"""Training itself: meta-train a fresh learned optimizer with a trained one as the OUTER optimizer.

For each seed, three meta-training runs from that seed (same initial θ, same task draws): the outer optimizer is
(1) the trained learned optimizer θ* through its optax drop-in (``outer_opt = "lopt:PATH"``), (2) and (3) Adam at
two learning rates (with the usual global-norm clipping). The runs use :func:`lopt_trainer.meta.meta_train`
unchanged; each lives in its own folder ``OUT/seed_S/<run>`` (``lopt_outer``, ``adam_lr<lr>``) with its
``config.json``, ``metrics.jsonl`` and checkpoint, so an interrupted experiment resumes.

**Judged on a panel, not on the meta-loss.** The meta-loss of a short run mixes task-to-task noise with progress,
so each run scores its θ on a quality panel (:mod:`lopt_trainer.evaluation.panel`; by default 16 held-out
quadratics, 2 seeds, 300 inner steps) at step 0 and every ``panel_every`` steps. From those records:

* ``gain``: the run's last panel score minus its step-0 score (the fresh θ), with a paired bootstrap 90% interval
  over the panel's tasks; ``budget_step``: the first scored step from which that interval stays above 0 at every
  later look — the budget at which the outer optimizer *measurably* improves the fresh θ (None: not within the run);
* per seed, at the last panel step all its runs reached: ``best_adam``, the Adam run with the higher panel score
  (the best of its learning rates, chosen with hindsight, which favours Adam), and ``lopt_vs_best_adam``, the
  learned outer optimizer's score minus that run's, paired over tasks with its interval;
* over all seeds, ``pooled``: the mean of that difference over seeds and tasks, with a two-level bootstrap 90%
  interval (seeds resampled, then tasks: both the seed-to-seed and the task-to-task spread), and how many seeds
  the learned outer optimizer won.

With ``panel_every = 0`` (``make run``'s small setting) there is no panel and only the meta-loss curves are
reported. The default is small: low-dimensional quadratics of the ``meta_train`` split, truncation 10, 4 problems
per estimate, horizons 50-200, 60 outer steps, a panel every 20. Everything is overridable (``overrides`` takes any
:class:`~lopt_trainer.meta.config.MetaTrainConfig` field).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

import taskgen
from lopt_trainer.common.folder_lock import folder_lock
from lopt_trainer.common.run_files import write_json
from lopt_trainer.common.task_pool import filter_specs, load_pool
from lopt_trainer.evaluation.panel import paired_bootstrap
from lopt_trainer.meta.config import MetaTrainConfig
from lopt_trainer.meta.metrics import read_metrics
from lopt_trainer.meta.trainer import meta_train
from lopt_trainer.theta.names import theta_label

RESULT_FILE, PLOT_FILE = "self_training.json", "self_training.png"
DEFAULT_ADAM_LRS = (3e-4, 1e-3)
DEFAULT_META = {
    "filters": {"family": ["quadratic"], "split": ["meta_train"]}, "max_params": 64, "truncation": 10,
    "tasks_per_group": 4, "horizon_min": 50, "horizon_max": 200, "resample_every": 20, "eval_every": 0,
    "checkpoint_every": 20, "steps": 60, "theta_init": "random", "panel_every": 20,
    "panel": {"families": ["quadratic"], "per_family": 16, "steps": 300, "seeds": 2},
}
"""Meta-training settings of the small default run (any other field keeps the MetaTrainConfig default). The fresh θ
starts from a random init, as in the paper: the question is whether the learned optimizer can train one from
scratch."""


def run_name(outer: str, lr: float | None = None) -> str:
    """Folder name of one run: ``lopt_outer`` or ``adam_lr<lr>``."""
    return "lopt_outer" if outer == "lopt" else f"adam_lr{lr:.0e}"


def run_dir_name(seed: int, outer: str, lr: float | None = None) -> str:
    """Folder of one run under ``OUT``: ``seed_<seed>/<run_name>``."""
    return f"seed_{seed}/{run_name(outer, lr)}"


def default_specs():
    """Specs of the default suite; if it is not installed, 64 quadratics generated with seed 0 (documented
    fallback so the experiment runs on a bare checkout)."""
    path = taskgen.default_suite_path()
    if path.exists():
        return taskgen.load_specs(path)
    return taskgen.generate_suite(["quadratic"], per_family=64, seed=0)


def run_self_training(theta_path, out_dir, *, adam_lrs=DEFAULT_ADAM_LRS, steps: int | None = None,
                      overrides: dict | None = None, seeds=(0,), specs=None, suite=None, manifest=None,
                      resume: bool = True, progress: bool = True) -> dict:
    """Run the three meta-trainings of every seed in ``seeds`` into ``out_dir`` and write ``self_training.json``
    / ``.png`` (see the module docstring for what they hold).

    ``theta_path``: the trained θ (any name of :mod:`lopt_trainer.theta.names`: a ``.npz``, a run folder, a
    checkpoint, ``pretrained``, ``handset``, ``random``). ``specs`` (Python) or
    ``suite`` / ``manifest`` choose the task pool (default: :func:`default_specs`). Returns the summary dict
    (``runs``: per run its seed, outer optimizer, learning rate, steps, first/last-10% mean meta-loss and, with a
    panel, its panel scores, ``gain`` and ``budget_step``; ``seeds``: per seed the comparison with the best Adam
    run; ``pooled``). ``out_dir`` is locked while the experiment runs (:mod:`lopt_trainer.common.folder_lock`).
    ``ValueError`` for an empty or repeated ``seeds``, a seed out of range or a bad setting (before any run). With
    ``"interrupted": True`` when a run was interrupted (Ctrl-C; it is checkpointed, and no summary is written).
    """
    seeds = [int(x) for x in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {seeds}")
    for seed in seeds:
        base_config(overrides, steps, seed)
    out_dir = Path(out_dir)
    with folder_lock(out_dir):
        return _self_training(theta_path, out_dir, adam_lrs, base_config(overrides, steps, seeds[0]), seeds, specs,
                              suite, manifest, resume, progress)


def base_config(overrides: dict | None = None, steps: int | None = None, seed: int = 0) -> MetaTrainConfig:
    """The meta-training settings shared by the three runs of a seed: :data:`DEFAULT_META` < ``overrides`` <
    ``steps`` and ``seed``; ``ValueError`` / ``TypeError`` name a bad setting."""
    settings = {**DEFAULT_META, **(overrides or {}), "seed": seed}
    if steps is not None:
        settings["steps"] = steps
    config = MetaTrainConfig.from_dict(settings)
    if config.panel_every > 0 and config.steps % config.panel_every:
        raise ValueError(f"self-training scores its last step on the panel: steps ({config.steps}) must be a "
                         f"multiple of panel_every ({config.panel_every})")
    return config


def _self_training(theta_path, out_dir: Path, adam_lrs, base: MetaTrainConfig, seeds, specs, suite, manifest,
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
    if base.panel_every > 0 and (suite or manifest) and not (base.panel.get("suite") or base.panel.get("manifest")):
        # the panel's held-out tasks come from the experiment's task pool, not silently from the default suite
        base = dataclasses.replace(base, panel={**base.panel, "suite": suite, "manifest": manifest})
    elif base.panel_every > 0 and not (base.panel.get("suite") or base.panel.get("manifest")) \
            and not taskgen.default_suite_path().exists():
        raise ValueError("the self-training panel needs held-out tasks: give --suite/--manifest or set "
                         "panel_every=0 (the default suite is not installed)")
    runs = [("lopt", None, f"lopt:{theta_label(theta_path)}")]
    runs += [("adam", float(lr), "adam") for lr in adam_lrs]
    summary = {"settings": base.to_dict(), "theta_path": theta_label(theta_path), "seed_list": seeds, "runs": []}
    for seed in seeds:
        for outer, lr, outer_opt in runs:
            cfg = dataclasses.replace(base, seed=seed, outer_opt=outer_opt,
                                      outer_lr=lr if lr is not None else base.outer_lr)
            name = run_dir_name(seed, outer, lr)
            result = meta_train(cfg, out_dir / name, resume=resume, specs=train_specs, eval_specs=[],
                                progress=progress)
            if result.interrupted:  # Ctrl-C: the run is checkpointed; the experiment stops, writing no summary
                return {**summary, "interrupted": True}
            summary["runs"].append({**run_summary(out_dir / name, outer, lr), "seed": seed, "dir": name})
    summary.update(compare_outer(summary["runs"]))
    write_json(out_dir / RESULT_FILE, summary)
    plot_self_training(out_dir, summary, out_dir / PLOT_FILE)
    return summary


def meta_loss_series(run_dir) -> tuple[np.ndarray, np.ndarray]:
    """``(outer steps, meta-losses)`` of a run's ``metrics.jsonl`` (step records only)."""
    pts = [(r["step"], r["meta_loss"]) for r in read_metrics(run_dir)
           if r.get("kind") == "step" and r.get("meta_loss") is not None]
    return np.asarray([p[0] for p in pts], np.int64), np.asarray([p[1] for p in pts], np.float64)


def _finite(x) -> float:
    """A score read back from JSON as a float (None, written for a NaN, becomes NaN)."""
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else float("nan")


def panel_series(run_dir) -> list[dict]:
    """The run's panel records (``step``, ``score`` (NaN when not finite), ``task_scores``), by step (the last
    record of a step wins: a resumed run may have scored a step twice)."""
    by_step = {r["step"]: r for r in read_metrics(run_dir) if r.get("kind") == "panel"}
    return [{"step": s, "score": _finite(by_step[s].get("score")), "task_scores": by_step[s].get("task_scores") or {}}
            for s in sorted(by_step)]


def run_summary(run_dir, outer: str, lr: float | None) -> dict:
    """One run's line of the summary: mean meta-loss over the first and the last 10% of its steps and, when the
    run has panel records, its ``panel`` scores by step (``task_scores`` per step under ``panel_task_scores``)
    and, when step 0 was scored, ``gain`` (the last panel score against step 0's, paired 90% interval) and
    ``budget_step``: the first scored step from which the gain's interval stays above 0 at every later scored step
    (None: not within the run). Requiring it to stay above 0 guards against a lucky look among many."""
    x, y = meta_loss_series(run_dir)
    k = max(1, len(y) // 10)
    out = {"name": run_name(outer, lr), "outer": outer, "outer_lr": lr, "steps": int(len(y)),
           "first_meta_loss": float(np.mean(y[:k])) if len(y) else None,
           "final_meta_loss": float(np.mean(y[-k:])) if len(y) else None,
           "min_meta_loss": float(np.min(y)) if len(y) else None, "dir": Path(run_dir).name}
    panel = panel_series(run_dir)
    if not panel:
        return out
    out["panel"] = [{"step": p["step"], "score": p["score"]} for p in panel]
    out["panel_task_scores"] = {str(p["step"]): p["task_scores"] for p in panel}
    if panel[0]["step"] == 0 and len(panel) > 1:
        start = panel[0]["task_scores"]
        gains = [(p["step"], paired_bootstrap(p["task_scores"], start)) for p in panel[1:]]
        above = [bool(g["tasks"]) and np.isfinite(g["low"]) and g["low"] > 0 for _, g in gains]
        out["gain"] = gains[-1][1]
        out["budget_step"] = next((step for n, (step, _) in enumerate(gains) if all(above[n:])), None)
    return out


def compare_outer(runs: list[dict]) -> dict:
    """Per seed, the learned outer optimizer against the better of the Adam runs, at the last panel step all the
    seed's runs reached (> 0; a seed whose runs have no common scored step after 0 is left out), and the pooled
    comparison over seeds (see the module docstring): ``{"seeds": [...], "pooled": {...}}``; empty when no seed
    can be compared. Best Adam: the higher finite panel score at that step (chosen with hindsight: favours Adam).
    Pooled: the mean difference over seeds and tasks, its interval from :func:`two_level_bootstrap`."""
    per_seed, lopt_by_task, adam_by_task = [], {}, {}
    for seed in sorted({r["seed"] for r in runs}):
        mine = [r for r in runs if r["seed"] == seed and r.get("panel")]
        lopt = next((r for r in mine if r["outer"] == "lopt"), None)
        adams = [r for r in mine if r["outer"] == "adam"]
        if lopt is None or not adams:
            continue
        common = set.intersection(*({p["step"] for p in r["panel"]} for r in [lopt, *adams])) - {0}
        if not common:
            continue
        step = max(common)
        score = lambda r: next(p["score"] for p in r["panel"] if p["step"] == step)  # noqa: E731
        finite = [r for r in adams if np.isfinite(score(r))]
        if not finite:
            continue
        best = max(finite, key=score)
        mine_scores, best_scores = (r["panel_task_scores"][str(step)] for r in (lopt, best))
        per_seed.append({"seed": seed, "step": step, "best_adam": best["name"], "lopt_score": score(lopt),
                         "best_adam_score": score(best), "lopt_vs_best_adam": paired_bootstrap(mine_scores, best_scores)})
        for t, v in mine_scores.items():
            lopt_by_task.setdefault(t, []).append(v)
        for t, v in best_scores.items():
            adam_by_task.setdefault(t, []).append(v)
    if not per_seed:
        return {}
    n = len(per_seed)
    tasks = sorted(t for t in lopt_by_task if len(lopt_by_task[t]) == n and len(adam_by_task.get(t, [])) == n)
    diffs = np.asarray([[lopt_by_task[t][i] - adam_by_task[t][i] for t in tasks] for i in range(n)], np.float64)
    pooled = two_level_bootstrap(diffs)
    wins = sum(1 for r in per_seed if r["lopt_vs_best_adam"]["mean"] > 0)
    return {"seeds": per_seed, "pooled": {**pooled, "seeds": n, "seeds_won": wins}}


def two_level_bootstrap(diffs: np.ndarray, *, n_boot: int = 5000, level: float = 0.9, seed: int = 0) -> dict:
    """Mean of ``diffs`` ``[seeds, tasks]`` (paired differences) with a percentile interval at ``level`` from a
    two-level bootstrap: seeds resampled with replacement, then tasks (the same resampled tasks for every seed: the
    seeds share the panel's tasks). ``{"mean", "low", "high", "tasks"}``; NaN figures when ``diffs`` is empty."""
    diffs = np.asarray(diffs, np.float64)
    if diffs.ndim != 2 or not diffs.size:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "tasks": 0}
    rng = np.random.default_rng(seed)
    n_s, n_t = diffs.shape
    s_idx = rng.integers(0, n_s, size=(n_boot, n_s))
    t_idx = rng.integers(0, n_t, size=(n_boot, n_t))
    boots = np.asarray([diffs[s_idx[b]][:, t_idx[b]].mean() for b in range(n_boot)])
    tail = (1.0 - level) / 2.0
    return {"mean": float(diffs.mean()), "low": float(np.quantile(boots, tail)),
            "high": float(np.quantile(boots, 1.0 - tail)), "tasks": int(n_t)}


def _smooth(y: np.ndarray) -> np.ndarray:
    w = max(1, len(y) // 15)
    c = np.cumsum(np.insert(y, 0, 0.0))
    return np.asarray([(c[i + 1] - c[max(0, i + 1 - w)]) / (i + 1 - max(0, i + 1 - w)) for i in range(len(y))])


def plot_self_training(out_dir, summary: dict, path) -> Path:
    """The experiment's figure: with panel records, :func:`plot_panel`; otherwise the meta-loss curves
    (:func:`plot_meta_loss`)."""
    if any(r.get("panel") for r in summary.get("runs", [])):
        return plot_panel(summary, path)
    return plot_meta_loss(out_dir, summary, path)


def _finish(fig, path) -> Path:
    """Title, lay out, save (PNG) and close a figure of this experiment; returns ``path``."""
    import matplotlib.pyplot as plt

    fig.suptitle("Meta-training a fresh learned optimizer: learned vs Adam outer optimizer")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _run_label(run: dict) -> str:
    return "learned optimizer (θ*)" if run["outer"] == "lopt" else f"Adam lr {run['outer_lr']:g}"


def plot_panel(summary: dict, path) -> Path:
    """Left: panel score against outer step, each seed faint, the mean over seeds solid, per outer optimizer.
    Right: per seed and pooled, the learned outer optimizer's final panel score minus the best Adam run's, with
    paired bootstrap 90% intervals (above 0: the learned optimizer trained the fresh θ better)."""
    import matplotlib  # optional heavy dependency: imported only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, axd) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = {}
    for run in summary["runs"]:
        if not run.get("panel"):
            continue
        label = _run_label(run)
        steps = [p["step"] for p in run["panel"]]
        scores = [p["score"] for p in run["panel"]]
        line, = ax.plot(steps, scores, lw=0.8, alpha=0.35, color=colors.get(label))
        colors.setdefault(label, line.get_color())
    for label, color in colors.items():
        by_step: dict = {}
        for run in summary["runs"]:
            if run.get("panel") and _run_label(run) == label:
                for p in run["panel"]:
                    by_step.setdefault(p["step"], []).append(p["score"])
        xs = sorted(by_step)
        ax.plot(xs, [np.mean(by_step[x]) for x in xs], lw=2, color=color, label=f"outer: {label}")
    ax.set_xlabel("outer step")
    ax.set_ylabel("panel score of the fresh θ (higher is better)")
    ax.set_title("the fresh θ on the panel")
    ax.legend(fontsize=8)
    rows = [(f"seed {r['seed']}\nvs {r['best_adam']}", r["lopt_vs_best_adam"]) for r in summary.get("seeds", [])]
    if summary.get("pooled"):
        rows.append(("pooled", summary["pooled"]))
    for i, (name, iv) in enumerate(rows):
        axd.errorbar([i], [iv["mean"]], yerr=[[iv["mean"] - iv["low"]], [iv["high"] - iv["mean"]]], fmt="o",
                     capsize=4, color="black" if name == "pooled" else "tab:blue")
    axd.set_xticks(range(len(rows)), [r[0] for r in rows], fontsize=7)
    axd.axhline(0.0, color="gray", ls="--", lw=1)
    axd.set_ylabel("learned − best Adam, final panel score")
    axd.set_title("paired 90% intervals (above 0: learned outer optimizer better)")
    return _finish(fig, path)


def plot_meta_loss(out_dir, summary: dict, path) -> Path:
    """Left: the three meta-loss curves (raw, faint; running mean, solid). Right: each run's meta-loss minus the
    mean of the runs at the same step — the runs share seed, task draws and perturbations, so this paired
    difference removes the task-to-task noise that dominates short runs."""
    import matplotlib  # optional heavy dependency: imported only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = []
    for run in summary["runs"]:
        x, y = meta_loss_series(Path(out_dir) / run["dir"])
        seed = f" (seed {run['seed']})" if len(summary.get("seed_list") or []) > 1 else ""
        series.append((_run_label(run) + seed, x, y))
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
    return _finish(fig, path)
