"""The pretrained learned optimizer shipped with the package, its recipe, and the command that remakes it.

``lopt_trainer/data/pretrained_theta.npz`` holds θ in the reference layout (see :mod:`lopt_trainer.reference_io`);
``pretrained_recipe.json`` holds the meta-training config (``pretrain_config.json``: suite, filters, estimator, seed)
and the number of outer steps actually run. ``make pretrain`` remakes it: meta-train with that config for that many
steps, then :func:`export_run`.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

THETA_FILE = "pretrained_theta.npz"
RECIPE_FILE = "pretrained_recipe.json"


def _data(name: str) -> Path:
    return Path(str(resources.files("lopt_trainer") / "data" / name))


def pretrained_path() -> Path:
    """Path of the shipped θ (``.npz``, reference layout); ``FileNotFoundError`` if the install lacks it."""
    path = _data(THETA_FILE)
    if not path.exists():
        raise FileNotFoundError(f"no pretrained θ at {path}; run `make pretrain` to make one")
    return path


def resolve_theta_path(theta_path=None) -> str:
    """``theta_path`` as given, or the shipped θ's path when it is empty (the CLI's default θ)."""
    return str(theta_path) if theta_path else str(pretrained_path())


def pretrained():
    """The shipped meta-parameters θ (a pytree of jnp arrays for :mod:`lopt_trainer.hierarchical`)."""
    from lopt_trainer.reference_io import load_reference_npz

    return load_reference_npz(pretrained_path())


def pretrained_recipe() -> dict:
    """The recipe the shipped θ was made with (config, suite, steps run, seed, meta-loss history summary)."""
    return json.loads(_data(RECIPE_FILE).read_text())


def export_run(run_dir, dest_dir=None) -> Path:
    """Copy θ of the meta-training run in ``run_dir`` into the package data (or ``dest_dir``) with its recipe.

    The θ copied is the run's panel-best (``RUN/best_theta.npz``, see :class:`lopt_trainer.meta.trainer.Panel`)
    when the run kept one, else its last θ. Returns the path of the written ``.npz``. The recipe records the run's
    config, the step it reached, and the panel figures of the run and of the θ copied.
    """
    from lopt_trainer.meta.metrics import read_metrics
    from lopt_trainer.meta.trainer import load_theta
    from lopt_trainer.reference_io import save_reference_npz
    from taskgen.specfile import atomic_write_bytes

    run_dir = Path(run_dir)
    dest = Path(dest_dir) if dest_dir else _data("").parent / "data"
    best = run_dir / "best_theta.npz"
    theta = load_theta(best if best.is_file() else run_dir)
    if best.is_file():
        from lopt_trainer.evaluation.runner import theta_digest

        want = json.loads((run_dir / "best.json").read_text()).get("theta_digest")
        if want is not None and want != theta_digest(theta):
            raise ValueError(f"{best}: does not match {run_dir / 'best.json'} (interrupted while saving?); "
                             "resume the run to write both again")
    config = json.loads((run_dir / "config.json").read_text())
    records = read_metrics(run_dir)
    metrics = [m for m in records if m.get("kind") == "step"]
    recipe = {
        "config": config,
        "steps_run": metrics[-1]["step"] + 1 if metrics else 0,
        "meta_loss_first": metrics[0]["meta_loss"] if metrics else None,
        "meta_loss_last_mean": (sum(m["meta_loss"] for m in metrics[-20:]) / len(metrics[-20:])) if metrics else None,
        "command": "make pretrain",
        "theta": "panel-best" if best.is_file() else "last",
        "panel_best": json.loads((run_dir / "best.json").read_text()) if best.is_file() else None,
        "panel": [m for m in records if m.get("kind") == "panel"],
    }
    save_reference_npz(theta, dest / THETA_FILE)
    atomic_write_bytes(dest / RECIPE_FILE, (json.dumps(recipe, indent=1, sort_keys=True) + "\n").encode())
    return dest / THETA_FILE

