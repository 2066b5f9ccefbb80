"""The quality panel: a fixed set of held-out tasks on which θ is scored against cached AdamLR baselines.

The meta-loss of a run compares different tasks at different moments, so it cannot say whether θ improved. The
panel can: the same ``meta_test`` tasks (``per_family`` from each of ``families``, drawn with a fixed seed within
the size limits), the same seeds and horizon every time, scored with the evaluation pipeline of
``taskgen lopt eval`` (:func:`lopt_trainer.evaluation.run_evaluation`). Its AdamLR runs (the 14-point grid, from
which both Global AdamLR and per-task AdamLR@14 are chosen) come from the baseline cache
(:mod:`lopt_trainer.evaluation.records`): computed once, at the first panel evaluation, then reused by every later
evaluation, every run, ``taskgen lopt eval`` and ``make quality``.

With ``on="valid"`` the panel is the yardstick's valid set instead (:mod:`~.yardstick`: 120 frozen tasks, 3 seeds,
committed baselines) and its ``score`` is minus θ's mean normalized final loss (higher is better), each task's
score minus its seed-mean normalized loss; the other settings then do not apply. With ``on="source"`` it is the
same yardstick on up to ``max_tasks`` held-out (``meta_test``) tasks of the run's own task source, spread over its
families (:func:`~.task_sets.source_tasks` with ``task_seed``), their AdamLR grid computed once and cached
(:func:`~.yardstick.evaluate_tasks`).

Figures of one evaluation (:func:`evaluate_panel`): ``beats_global`` / ``beats_per_task`` (fraction of tasks
where θ's final test loss beats Global AdamLR / per-task AdamLR@14), ``median_improvement`` over Global AdamLR,
``diverged`` (learned-optimizer runs that diverged), and ``score``: the mean over tasks of the improvement over
Global AdamLR clipped to ±3 (a continuous figure: one task cannot dominate it; higher is better).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from lopt_trainer.common.run_files import write_json
from lopt_trainer.common.task_pool import check_family_limits, load_pool
from lopt_trainer.evaluation import normalized as nz
from lopt_trainer.evaluation import yardstick
from lopt_trainer.evaluation.runner import RESULTS_FILE, run_evaluation
from lopt_trainer.evaluation.scoring import per_task, read_table
from lopt_trainer.evaluation.settings import EvalSettings
from lopt_trainer.evaluation.task_sets import source_tasks, task_set_tasks
from lopt_trainer.evaluation.tasks import select_tasks

SCORE_CLIP = 3.0

ALL_FAMILIES = ("char_lm", "conv_fc", "conv_pooling", "maf", "mlp", "mlp_ae", "mlp_vae", "nvp", "quadratic",
                "rnn_text_classification", "twod", "word_lm")
"""The 12 built-in families (the panel's default)."""

PANEL_FAMILY_LIMITS = {
    "char_lm": {"max_params": 20_000, "max_flops": 20_000_000},
    "mlp_vae": {"max_params": 20_000, "max_flops": 10_000_000},
    "rnn_text_classification": {"max_params": 20_000, "max_flops": 10_000_000},
    "word_lm": {"max_params": 100_000, "max_flops": 100_000_000},
}
"""Per-family cost limits of the families with few or no tasks within 20000 parameters and 5e6 FLOPs per step:
the smallest round limits that leave each at least 10 ``meta_train`` and 3 ``meta_test`` specs of the default
suite (char_lm 12 / 4, mlp_vae 13 / 4, rnn_text_classification 29 / 5, word_lm 16 / 6; the recipe
``pretrain_config.json`` uses the same)."""


PANEL_ON = (None, "valid", "source")
"""What a panel is drawn from: the suite's held-out tasks by family (None), the yardstick's valid set, or the
run's own task source."""


@dataclasses.dataclass(frozen=True)
class PanelSettings:
    """Which tasks, and how they are run (defaults in brackets).

    ``families`` [all 12 built-in families: every one has held-out (``meta_test``) tasks in the default suite
    within the limits below], ``per_family`` [3], ``task_seed`` [0], ``max_params`` [20000], ``max_flops``
    [5e6], ``family_limits`` [:data:`PANEL_FAMILY_LIMITS`: ``{family: {"max_params": int, "max_flops": int}}``,
    a family's own cost limits in place of the global ones; the four families whose tasks are larger get limits
    that leave them at least 3 held-out tasks], ``steps`` [1000], ``seeds`` [2], ``suite`` / ``manifest``
    [None = the default suite]. With the defaults the panel has 36 tasks (3 of each family).
    ``ValueError`` naming the setting for a count below 1 or a malformed ``family_limits``.
    """

    families: tuple = ALL_FAMILIES
    per_family: int = 3
    task_seed: int = 0
    max_params: int = 20_000
    max_flops: int = 5_000_000
    family_limits: dict = dataclasses.field(default_factory=lambda: dict(PANEL_FAMILY_LIMITS))
    steps: int = 1000
    seeds: int = 2
    suite: str | None = None
    manifest: str | None = None
    on: str | None = None
    max_tasks: int = 12

    def __post_init__(self):
        if self.on not in PANEL_ON:
            raise ValueError(f"panel on must be 'valid' (the yardstick's set for choosing θ), 'source' (the run's own "
                             f"held-out tasks) or null, got {self.on!r}")
        object.__setattr__(self, "families", tuple(self.families))
        object.__setattr__(self, "family_limits", check_family_limits(self.family_limits, "panel family_limits"))
        for name in ("per_family", "steps", "seeds", "max_tasks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"panel {name} must be an integer >= 1, got {value!r}")

    def __hash__(self):  # family_limits is a dict: hash its items
        fields = [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "family_limits"]
        limits = tuple(sorted((k, tuple(sorted(v.items()))) for k, v in self.family_limits.items()))
        return hash((tuple(fields), limits))

    @classmethod
    def from_dict(cls, d: dict | None) -> "PanelSettings":
        """Settings from a dict (unknown keys raise ``ValueError`` naming them)."""
        d = dict(d or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown panel settings {unknown}; known: {sorted(names)}")
        return cls(**d)

    def eval_settings(self):
        """The :class:`~lopt_trainer.evaluation.EvalSettings` of a panel evaluation (AdamLR only)."""
        return EvalSettings(steps=self.steps, seeds=self.seeds, baselines=("adamlr",), adamlr_trials=14)


def panel_tasks(settings: PanelSettings, specs=None) -> list:
    """The panel's :class:`~lopt_trainer.evaluation.tasks.EvalTask` list, all ``unseen``: per family, up to
    ``per_family`` ``meta_test`` specs within the size limits (the family's own in ``family_limits``), drawn by variant round robin with ``task_seed``.
    With ``on="source"``, ``specs`` are the run's held-out specs (:func:`~.task_sets.source_tasks`).
    Deterministic in its arguments; ``ValueError`` when no family has a task."""
    if settings.on == "source":
        if not specs:
            raise ValueError("the panel on the run's own source needs its held-out (meta_test) specs; there are none")
        return source_tasks(specs, settings.max_tasks, settings.task_seed)
    if settings.on is not None:
        return task_set_tasks(settings.on)
    specs = specs if specs is not None else load_pool(settings.suite, settings.manifest)
    out = []
    for family in settings.families:
        # select_tasks gives n // 2 seen and the rest unseen: ask for 2 * per_family and keep the unseen half.
        chosen = select_tasks(specs, 2 * settings.per_family, settings.task_seed, max_params=settings.max_params,
                              max_flops=settings.max_flops, filters={"family": [family]},
                              family_limits=settings.family_limits)
        out += [t for t in chosen if t.group == "unseen"]
    if not out:
        raise ValueError(f"no held-out task of families {list(settings.families)} within the panel's size limits")
    return out


def panel_figures(summary: dict, table) -> dict:
    """The panel's figures (see the module docstring) from an evaluation's summary and results table."""
    rows = {r["optimizer"]: r for r in summary["rows"] if r["group"] == "unseen"}
    glob = per_task(table, "improvement_final").get(("global_adamlr", "unseen"), {})
    values = np.clip(np.asarray(list(glob.values()), np.float64), -SCORE_CLIP, SCORE_CLIP)
    return {
        "score": float(np.mean(values)) if values.size else float("nan"),
        "beats_global": rows.get("global_adamlr", {}).get("frac_lopt_better"),
        "beats_per_task": rows.get("per_task_adamlr@14", {}).get("frac_lopt_better"),
        "median_improvement": rows.get("global_adamlr", {}).get("final", {}).get("median"),
        "diverged": summary["lopt"]["diverged"],
        "tasks": len(glob),
        "task_scores": task_scores(table),
    }


def task_scores(table) -> dict[str, float]:
    """``{task_id: improvement over Global AdamLR clipped to ±SCORE_CLIP}`` of a panel's results table: the terms
    whose mean is the panel ``score``."""
    glob = per_task(table, "improvement_final").get(("global_adamlr", "unseen"), {})
    return {tid: float(np.clip(v, -SCORE_CLIP, SCORE_CLIP)) for tid, v in glob.items()}


def paired_bootstrap(a: dict, b: dict, *, n_boot: int = 5000, level: float = 0.9, seed: int = 0) -> dict:
    """The mean over tasks of ``a[t] − b[t]`` (two θ's per-task scores, :func:`task_scores`, on the tasks both
    have) with a paired percentile-bootstrap interval at ``level`` (tasks resampled with replacement,
    ``n_boot`` times, from ``seed``). Returns ``{"mean", "low", "high", "tasks"}``; NaN figures when no task is
    shared. An interval above 0 says ``a`` is better on this panel beyond the task-to-task noise."""
    shared = sorted(set(a) & set(b))
    d = np.asarray([a[t] - b[t] for t in shared], np.float64)
    if not d.size:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "tasks": 0}
    idx = np.random.default_rng(seed).integers(0, d.size, size=(n_boot, d.size))
    boots = d[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return {"mean": float(d.mean()), "low": float(np.quantile(boots, tail)),
            "high": float(np.quantile(boots, 1.0 - tail)), "tasks": int(d.size)}


def yardstick_figures(summary: dict, scores) -> dict:
    """The panel's figures of a yardstick evaluation (module docstring): scores are minus normalized losses."""
    per_task = scores.final["theta"].mean(axis=1)
    glob = scores.final["global_adamlr"].mean(axis=1)
    versus = summary["versus"]
    return {"score": -float(per_task.mean()),
            "global_adamlr_score": -float(glob.mean()),
            "vs_global_adamlr": nz.paired_difference(glob, per_task, np.asarray(scores.families)),
            "beats_global": versus["global_adamlr"]["final"]["wins"] / summary["tasks"],
            "beats_per_task": versus["per_task_adamlr@14"]["final"]["wins"] / summary["tasks"],
            "median_improvement": -float(np.median(per_task)), "diverged": summary["diverged"],
            "tasks": summary["tasks"], "mean_normalized_loss": summary["rows"]["theta"]["final"]["mean"],
            "task_scores": {tid: -float(v) for tid, v in zip(scores.task_ids, per_task)}}


def evaluate_panel(theta, tasks, settings: PanelSettings, out_dir, *, progress: bool = False, what: str = "",
                   base=None) -> dict:
    """Score θ on the panel ``tasks`` into ``out_dir`` (an evaluation folder, see
    :mod:`lopt_trainer.evaluation.runner`); returns :func:`panel_figures`. Baselines come from the cache (with
    ``settings.on``: from the yardstick's committed table, or for ``source`` computed once and cached, ``base``
    when already loaded; ``out_dir`` then receives ``yardstick.json``); ``what`` names the tasks in progress
    lines."""
    if settings.on is not None:
        if settings.on == "source":
            summary, scores, _ = yardstick.evaluate_tasks(theta, tasks, what=what, progress=progress, base=base)
        else:
            summary, scores, _ = yardstick.evaluate(theta, settings.on, progress=progress)
        write_json(Path(out_dir) / "yardstick.json", {"set": settings.on, "summary": summary,
                                                      "per_task": yardstick.per_task_rows(scores)})
        return yardstick_figures(summary, scores)
    summary = run_evaluation(theta, tasks, out_dir, settings.eval_settings(), resume=True, progress=progress)
    return panel_figures(summary, read_table(Path(out_dir) / RESULTS_FILE))
