"""The yardstick's strip plot: per family, each task's normalized final loss for each θ, with the baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lopt_trainer.evaluation.plots import _pyplot

__all__ = ["strip_plot"]

_BASELINE_STYLE = {"global_adamlr": ("#555555", "--", "Global AdamLR (family mean)"),
                   "per_task_adamlr@14": ("#000000", ":", "per-task AdamLR@14 (family mean)")}


def strip_plot(scores: dict, path, title: str | None = None) -> Path:
    """Write a strip plot of ``{label: YardstickScores}`` (θ on one set) to ``path`` (PNG).

    Args:
      scores: θ label → its :class:`~lopt_trainer.evaluation.yardstick.YardstickScores`, all on one set.
      path: the PNG to write.
      title: the figure title (default: the set's name).

    Returns:
      ``path``.
    """
    plt = _pyplot()
    first = next(iter(scores.values()))
    families = sorted(set(first.families))
    fam = np.asarray(first.families)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.9 * len(families) + 2), 4.8))
    k = len(scores)
    rng = np.random.default_rng(0)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, (label, sc) in enumerate(scores.items()):
        x_all, y_all = [], []
        for i, f in enumerate(families):
            y = sc.final["theta"][fam == f].mean(axis=1)
            off = (j - (k - 1) / 2) * 0.7 / max(k, 1)
            x_all += list(i + off + rng.uniform(-0.05, 0.05, y.size))
            y_all += list(y)
        ax.scatter(x_all, y_all, s=14, alpha=0.8, color=colors[j % len(colors)], label=label)
    for row, (color, style, text) in _BASELINE_STYLE.items():
        for i, f in enumerate(families):
            m = float(first.final[row][fam == f].mean())
            ax.hlines(m, i - 0.42, i + 0.42, colors=color, linestyles=style, label=text if i == 0 else None)
    ax.axhline(0.0, color="#2ca02c", lw=0.8, label="L* (best AdamLR rate)")
    ax.axhline(1.0, color="#d62728", lw=0.8, label="L0 (initialisation)")
    ax.set_xticks(range(len(families)))
    ax.set_xticklabels(families, rotation=35, ha="right")
    ax.set_ylabel("normalized final loss n (lower is better)")
    ax.set_title(title or f"{first.set_name} set: {len(first.task_ids)} tasks, seed-mean n per task")
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
