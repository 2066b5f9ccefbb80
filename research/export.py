"""Exporting a run's θ: copy the panel-best (or last) θ of a meta-training run into the package data (or a candidate
folder), with its recipe (``make pretrain`` ends with :func:`export_run`; the release gate, :mod:`research.ship`,
writes through it)."""

from __future__ import annotations

import json
from pathlib import Path

from lopt_trainer.common.run_files import json_text, write_files_together
from lopt_trainer.meta.metrics import read_metrics
from lopt_trainer.theta.load import load_theta, theta_digest
from lopt_trainer.theta.reference_io import reference_npz_bytes
from lopt_trainer.theta.shipped import RECIPE_FILE, THETA_FILE, data_path


RECORD_FILE = "shipped_test.json"
"""What the ship gate checked, beside the shipped θ (:mod:`research.ship`)."""


def export_run(run_dir, dest_dir=None, record: dict | None = None) -> Path:
    """Copy θ of the meta-training run in ``run_dir`` into the package data (or ``dest_dir``) with its recipe.

    The θ copied is the run's panel-best (``RUN/best_theta.npz``, see :class:`lopt_trainer.meta.run_panel.Panel`)
    when the run kept one, else its last θ. Returns the path of the written ``.npz``. The recipe records the run's
    config, the step it reached, and the panel figures of the run and of the θ copied. ``ValueError`` when the
    best θ does not match the digest ``best.json`` names (a run interrupted while saving: resume it).
    """
    run_dir = Path(run_dir)
    dest = Path(dest_dir) if dest_dir else data_path()
    best = run_dir / "best_theta.npz"
    theta = run_theta(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    records = read_metrics(run_dir)
    metrics = [m for m in records if m.get("kind") == "step"]
    scored = [m["meta_loss"] for m in metrics if m.get("meta_loss") is not None]
    recipe = {
        "config": config,
        "steps_run": metrics[-1]["step"] + 1 if metrics else 0,
        "meta_loss_first": scored[0] if scored else None,
        "meta_loss_last_mean": (sum(scored[-20:]) / len(scored[-20:])) if scored else None,
        "command": "make pretrain",
        "theta": "panel-best" if best.is_file() else "last",
        "panel_best": json.loads((run_dir / "best.json").read_text()) if best.is_file() else None,
        "panel": [m for m in records if m.get("kind") == "panel"],
    }
    return write_shipped(theta, recipe, dest, record)


def run_theta(run_dir):
    """The θ :func:`export_run` copies from ``run_dir``: the panel-best (``RUN/best_theta.npz``) when the run kept
    one, else its last θ. ``ValueError`` when the best θ does not match the digest ``best.json`` names."""
    run_dir = Path(run_dir)
    best = run_dir / "best_theta.npz"
    theta = load_theta(best if best.is_file() else run_dir)
    if best.is_file():
        want = json.loads((run_dir / "best.json").read_text()).get("theta_digest")
        if want is not None and want != theta_digest(theta):
            raise ValueError(f"{best}: does not match {run_dir / 'best.json'} (interrupted while saving?); "
                             "resume the run to write both again")
    return theta


def write_shipped(theta, recipe: dict, dest, record: dict | None = None) -> Path:
    """Write θ, its recipe and (when given) the ship gate's ``record`` into folder ``dest`` so that they change
    together or not at all (:func:`~lopt_trainer.common.run_files.write_files_together`); returns the θ file's
    path."""
    dest = Path(dest)
    files = {THETA_FILE: reference_npz_bytes(theta), RECIPE_FILE: json_text(recipe).encode()}
    if record is not None:
        files[RECORD_FILE] = json_text(record).encode()
    write_files_together(dest, files)
    return dest / THETA_FILE
