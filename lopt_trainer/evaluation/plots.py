"""Box plots of an evaluation, like the paper's: one position per baseline, the seen and unseen tasks side by side.

Each box is the distribution over tasks of the (seed-averaged) improvement of the learned optimizer over that
baseline; above the dashed zero line the learned optimizer is better. Matplotlib with the Agg backend (no
display needed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lopt_trainer.evaluation.scoring import label, per_task

GROUP_STYLE = {"seen": ("#4C72B0", "seen (meta_train)"), "unseen": ("#DD8452", "unseen (meta_test)")}


def _pyplot():
    import matplotlib  # optional heavy dependency: imported only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def improvement_boxplot(table, row_order: list[str], measure: str, path, title: str | None = None) -> Path | None:
    """Write the box plot of column ``measure`` (``improvement_final`` / ``improvement_auc``) to ``path`` (PNG).

    Returns the path, or None when the table has no baseline rows.
    """
    plt = _pyplot()
    data = per_task(table, measure)
    names = [n for n in row_order if n != "lopt" and any((n, g) in data for g in GROUP_STYLE)]
    if not names:
        return None
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(names) + 2), 4.5))
    width = 0.36
    for k, (grp, (color, legend)) in enumerate(GROUP_STYLE.items()):
        vals, pos = [], []
        for i, n in enumerate(names):
            v = np.asarray(list(data.get((n, grp), {}).values()), np.float64)
            v = v[np.isfinite(v)]
            if v.size:
                vals.append(v)
                pos.append(i + (k - 0.5) * width)
        if not vals:
            continue
        bp = ax.boxplot(vals, positions=pos, widths=width * 0.9, patch_artist=True, showfliers=True,
                        medianprops={"color": "black"}, flierprops={"markersize": 3})
        for box in bp["boxes"]:
            box.set_facecolor(color)
            box.set_alpha(0.75)
        ax.plot([], [], color=color, lw=8, alpha=0.75, label=legend)
    ax.axhline(0.0, color="gray", ls="--", lw=1)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([label(n) for n in names], rotation=30, ha="right")
    what = "final loss" if measure.endswith("final") else "area under the curve"
    ax.set_ylabel(f"improvement ({what})\nlog-ratio of excess loss; > 0: learned better")
    ax.set_title(title or f"Learned optimizer vs baselines ({what})")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
