"""Run observability: JSONL metrics (one line per outer step, plus evaluation lines) and PNG plots.

Each line of ``RUN/metrics.jsonl`` is a JSON object with ``kind`` = ``"step"`` (``step``, ``meta_loss``,
``grad_norm``, ``theta_norm``, ``inner_steps``, ``inner_steps_per_s``, ``step_seconds``, ``compile_seconds``,
``clipped_losses``, ``nan_grads``, ``resets``, ``groups``, ``tasks``, ``families``, ``family_grad_share`` (each
family's share of the squared meta-gradient norm), ``workers_ok``…), ``"eval"`` (``step``, ``tasks``: per held-out
task ``mean_loss``, ``final_loss``, ``test_loss``, all normalised) or ``"panel"`` (``step`` = outer steps done,
``score``, ``beats_global``, ``beats_per_task``, ``median_improvement``, ``diverged``, ``task_scores``,
``vs_handset`` / ``vs_best`` paired bootstrap intervals; see :mod:`lopt_trainer.meta.run_panel`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lopt_trainer.common.run_files import append_jsonl, jsonl_line
from taskgen.specfile import atomic_write_bytes

METRICS_FILE = "metrics.jsonl"


def append_metrics(run_dir, record: dict) -> None:
    """Append one record (non-finite floats become null) and flush."""
    append_jsonl(Path(run_dir) / METRICS_FILE, record)


def read_metrics(run_dir) -> list[dict]:
    """All records of a run (a torn last line, from a kill mid-write, is skipped)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def kept_on_resume(kind, record_step: int, step: int) -> bool:
    """Whether a record of ``kind`` at ``record_step`` stays when a run resumes from its checkpoint at ``step``:
    records of earlier steps, and a panel record of θ after exactly ``step`` outer steps (it scored the
    checkpointed θ)."""
    return record_step < step or (kind == "panel" and record_step == step)


def truncate_metrics(run_dir, step: int) -> None:
    """Drop the records a resume from ``step`` does not keep (:func:`kept_on_resume`), so the log matches the
    checkpoint."""
    records = [r for r in read_metrics(run_dir) if kept_on_resume(r.get("kind"), r.get("step", -1), step)]
    atomic_write_bytes(Path(run_dir) / METRICS_FILE,
                       "".join(jsonl_line(r) for r in records).encode())


def _series(records, kind, key):
    pts = [(r["step"], r[key]) for r in records if r.get("kind") == kind and r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_run(run_dir, out_dir=None) -> list[Path]:
    """Write ``meta_loss.png``, ``grad_norm.png``, ``throughput.png`` and (if any) ``eval.png`` and ``panel.png``
    (the quality panel's score and win fractions over outer steps); returns paths."""
    import matplotlib  # optional heavy dependency: imported only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(run_dir)
    out_dir = Path(out_dir or run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key, label, fname, log in (("meta_loss", "meta-loss (normalised)", "meta_loss.png", False),
                                   ("grad_norm", "meta-gradient norm", "grad_norm.png", True),
                                   ("inner_steps_per_s", "inner steps / s", "throughput.png", False)):
        x, y = _series(records, "step", key)
        if not x:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(x, y, lw=0.8, alpha=0.5, label=key)
        if len(y) >= 10:
            w = max(2, len(y) // 20)
            smooth = [sum(y[max(0, i - w + 1):i + 1]) / len(y[max(0, i - w + 1):i + 1]) for i in range(len(y))]
            ax.plot(x, smooth, lw=1.5, label=f"running mean ({w})")
        if log and all(v > 0 for v in y):
            ax.set_yscale("log")
        ax.set_xlabel("outer step")
        ax.set_ylabel(label)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / fname, dpi=100)
        plt.close(fig)
        written.append(out_dir / fname)
    evals = [r for r in records if r.get("kind") == "eval"]
    if evals:
        fig, ax = plt.subplots(figsize=(6, 4))
        names = sorted({t for r in evals for t in r["tasks"]})
        for name in names:
            pts = [(r["step"], r["tasks"][name]["mean_loss"]) for r in evals if name in r["tasks"]]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        ax.set_xlabel("outer step")
        ax.set_ylabel("held-out mean normalised train loss")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / "eval.png", dpi=100)
        plt.close(fig)
        written.append(out_dir / "eval.png")
    panel = [r for r in records if r.get("kind") == "panel"]
    if panel:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        steps = [r["step"] for r in panel]
        ax1.plot(steps, [r.get("score") for r in panel], marker="o", label="score (mean clipped improvement)")
        ax1.plot(steps, [r.get("median_improvement") for r in panel], marker=".", label="median improvement")
        vs = [(r["step"], r["vs_handset"]) for r in panel if isinstance(r.get("vs_handset"), dict)
              and r["vs_handset"].get("mean") is not None]
        if vs:  # the paired bootstrap 90% interval of the score difference against the hand-set θ
            mean = np.asarray([v["mean"] for _, v in vs], np.float64)
            low = np.asarray([v["low"] if v.get("low") is not None else v["mean"] for _, v in vs], np.float64)
            high = np.asarray([v["high"] if v.get("high") is not None else v["mean"] for _, v in vs], np.float64)
            ax1.errorbar([s for s, _ in vs], mean, yerr=[mean - low, high - mean], fmt="s", capsize=3,
                         label="score − hand-set's (90% interval)")
        ax1.axhline(0.0, color="grey", lw=0.8)
        ax1.set_xlabel("outer step")
        ax1.set_ylabel("improvement over Global AdamLR")
        ax1.legend(fontsize=8)
        ax2.plot(steps, [r.get("beats_global") for r in panel], marker="o", label="beats Global AdamLR")
        ax2.plot(steps, [r.get("beats_per_task") for r in panel], marker="s", label="beats per-task AdamLR@14")
        ax2.set_ylim(-0.02, 1.02)
        ax2.set_xlabel("outer step")
        ax2.set_ylabel("fraction of panel tasks")
        ax2.legend(fontsize=8)
        fig.suptitle("quality panel (held-out tasks)")
        fig.tight_layout()
        fig.savefig(out_dir / "panel.png", dpi=100)
        plt.close(fig)
        written.append(out_dir / "panel.png")
    return written
