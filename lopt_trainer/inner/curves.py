"""Saving and plotting the curves of a :class:`lopt_trainer.inner.loop.TrainResult`: JSON, Arrow IPC, PNG.

Every writer is atomic (a temporary file in the target directory, then ``os.replace``).
"""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pyarrow as pa

from lopt_trainer.common import run_files
from taskgen.specfile import atomic_write_bytes

SPLITS = ("train", "inner_valid", "outer_valid", "test")


def result_to_dict(result) -> dict:
    """A JSON-able dict of ``result``: steps, per-split losses and normalised losses, final values, step losses,
    divergence, timings and meta. Arrays keep the result's batch dimensions; NaN/Inf become ``null``."""
    arr = np.asarray
    return run_files.clean_json({
        "meta": result.meta,
        "batch_shape": list(result.batch_shape),
        "steps": arr(result.steps),
        "losses": {s: arr(v) for s, v in result.losses.items()},
        "normalized": {s: arr(v) for s, v in result.normalized.items()},
        "final": {s: arr(v) for s, v in result.final.items()},
        "final_normalized": {s: arr(v) for s, v in result.final_normalized.items()},
        "step_losses": arr(result.step_losses),
        "diverged": arr(result.diverged),
        "diverged_at": arr(result.diverged_at),
        "wall_time_s": float(result.wall_time),
        "compile_time_s": float(result.compile_time),
    })


def write_json(result, path) -> str:
    """Write :func:`result_to_dict` of ``result`` to ``path`` atomically. Returns the path."""
    return os.fspath(run_files.write_json(path, result_to_dict(result)))


def result_table(result):
    """A ``pyarrow.Table`` with one row per (run, curve point): columns ``trial``, ``seed_index``, ``step``, the
    four split losses and their ``*_normalized`` versions (float32, NaN kept) and ``diverged``. Run metadata goes
    into the schema metadata as JSON (key ``meta``)."""
    batch = result.batch_shape
    flat = (1, 1) if batch == () else (batch + (1,) if len(batch) == 1 else batch)
    n_points = len(result.steps)

    def grid(v):
        return np.asarray(v, np.float32).reshape(flat + (n_points,))

    trial, seed_idx, step = np.meshgrid(np.arange(flat[0]), np.arange(flat[1]), result.steps, indexing="ij")
    cols = {
        "trial": pa.array(trial.ravel().astype(np.int32)),
        "seed_index": pa.array(seed_idx.ravel().astype(np.int32)),
        "step": pa.array(step.ravel().astype(np.int64)),
    }
    for s in SPLITS:
        cols[s] = pa.array(grid(result.losses[s]).ravel())
    for s in SPLITS:
        cols[f"{s}_normalized"] = pa.array(grid(result.normalized[s]).ravel())
    div = np.broadcast_to(np.asarray(result.diverged).reshape(flat + (1,)), flat + (n_points,))
    cols["diverged"] = pa.array(div.ravel().astype(bool))
    table = pa.table(cols)
    meta = {"meta": json.dumps(result.meta, sort_keys=True), "batch_shape": json.dumps(list(batch))}
    return table.replace_schema_metadata(meta)


def write_arrow(result, path) -> str:
    """Write :func:`result_table` to ``path`` as an Arrow IPC file, atomically. Returns the path."""
    table = result_table(result)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())
    return os.fspath(path)


def plot(result, path, title: str | None = None, normalized: bool = False, highlight: int | None = None) -> str:
    """Plot the four loss curves of ``result`` on a log axis to a PNG at ``path`` (matplotlib, Agg backend),
    atomically. For a batch, every run is a thin line and run ``highlight`` (index into the flattened batch,
    e.g. the best trial) a thick one. Returns the path."""
    import matplotlib  # optional heavy dependency: imported only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = result.normalized if normalized else result.losses
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for i, s in enumerate(SPLITS):
        ys = np.asarray(curves[s], np.float64).reshape(-1, len(result.steps))
        for j, y in enumerate(ys):
            strong = len(ys) == 1 or j == highlight
            ax.plot(result.steps, np.where(np.isfinite(y) & (y > 0), y, np.nan), color=f"C{i}",
                    lw=1.8 if strong else 0.6, alpha=1.0 if strong else 0.3,
                    label=s if j == (highlight or 0) else None)
    finite = [np.asarray(c)[np.isfinite(c)] for c in curves.values()]
    if any(f.size and (f > 0).all() for f in finite):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("normalised loss" if normalized else "loss")
    ax.set_title(title or str(result.meta.get("task_id") or ""))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return os.fspath(path)
