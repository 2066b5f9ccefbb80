"""The release gate: shipping a θ into the package only when it wins on the yardstick's test set
(``python -m research ship``, ``make ship``).

The gate measures the candidate θ and the untrained hand-set θ on the yardstick's frozen ``test`` set
(:func:`lopt_trainer.evaluation.yardstick.evaluate`: 120 tasks, 3 seeds, 1000 steps, committed AdamLR
baselines; runs already cached for a θ's digest are reused) and ships only when every target of
:func:`shortfalls` holds:

* the candidate's mean normalized final loss is below the hand-set θ's with the paired 95 % interval of
  ``n(hand-set) − n(θ)`` above 0;
* it beats Global AdamLR on ≥ 60 % of the tasks and per-task AdamLR@14 on ≥ 25 % (wins by the yardstick's
  win / tie / loss rule: ties do not count);
* none of its runs diverged.

Because the gate computes its own measurement, no result file can be mixed up with another θ's. On success it
writes the θ and its recipe into the package data, then ``shipped_test.json`` beside them with what it checked
(:func:`test_record`); otherwise it raises :class:`ShipRefusedError` naming each shortfall
and writes nothing.

:func:`ship` ships a run's panel-best θ (or its last θ); :func:`ship_file` ships a θ file with a provenance JSON
that becomes the shipped recipe.
"""

from __future__ import annotations

import json
from pathlib import Path

from lopt_trainer.errors import LOptError
from lopt_trainer.evaluation import yardstick
from lopt_trainer.evaluation.baseline_table import BASELINE_VERSION
from lopt_trainer.evaluation.task_sets import read_index
from lopt_trainer.theta.load import load_theta, theta_digest
from lopt_trainer.theta.shipped import data_path
from research.export import RECORD_FILE, export_run, run_theta, write_shipped

__all__ = ["TARGETS", "RECORD_FILE", "ShipRefusedError", "test_record", "shortfalls", "ship", "ship_file",
           "read_provenance"]

TARGETS = {"beats_global_adamlr": 0.60, "beats_per_task_adamlr14": 0.25}
"""The least fraction of test tasks on which θ must beat each baseline."""


class ShipRefusedError(LOptError):
    """A θ was not shipped: it misses a target on the test set, or its provenance file is bad (nothing written)."""


def test_record(theta, *, cache=None, progress: bool = True, data_dir=None) -> dict:
    """θ and the hand-set θ on the yardstick's test set: what the gate checks.

    Args:
      theta: the candidate θ.
      cache: the yardstick's cache of θ runs (its default when None).
      progress: show progress bars.
      data_dir: where the task sets and baselines live (the package's by default).

    Returns:
      ``{"theta_digest", "vs_handset": {"mean", "low", "high"} (n(hand-set) − n(θ); > 0: θ better),
      "beats_global_adamlr", "beats_per_task_adamlr14", "diverged", "tasks", "seeds", "mean_normalized_loss",
      "set_sha256", "baseline_version"}``.
    """
    summary, scores, _ = yardstick.evaluate(theta, "test", cache=cache, progress=progress, data_dir=data_dir)
    _, handset, _ = yardstick.evaluate(load_theta("handset"), "test", cache=cache, progress=progress,
                                       data_dir=data_dir)
    d = yardstick.compare(handset, scores)["final"]["difference"]  # hand-set − θ
    tasks = summary["tasks"]
    versus = summary["versus"]
    return {"theta_digest": summary["theta_digest"],
            "vs_handset": {"mean": d["mean"], "low": d["low"], "high": d["high"]},
            "beats_global_adamlr": versus["global_adamlr"]["final"]["wins"] / tasks,
            "beats_per_task_adamlr14": versus["per_task_adamlr@14"]["final"]["wins"] / tasks,
            "diverged": summary["diverged"], "tasks": tasks, "seeds": summary["seeds"],
            "mean_normalized_loss": summary["rows"]["theta"]["final"]["mean"],
            "set_sha256": read_index(data_dir)["sets"]["test"]["sha256"], "baseline_version": BASELINE_VERSION}


def shortfalls(record: dict) -> list[str]:
    """The targets :func:`test_record`'s ``record`` misses, one line each; empty when it meets them all."""
    out = []
    vs = record["vs_handset"]
    if not vs["low"] > 0:
        out.append(f"ahead of the hand-set θ by {vs['mean']:+.4f} [{vs['low']:+.4f}, {vs['high']:+.4f}] in mean "
                   "normalized loss (target: the 95% interval above 0)")
    for key, need in TARGETS.items():
        if not record[key] >= need:
            name = "Global AdamLR" if key == "beats_global_adamlr" else "per-task AdamLR@14"
            out.append(f"test tasks beaten over {name}: {record[key]:.0%} (target ≥ {need:.0%})")
    if record["diverged"]:
        out.append(f"learned-optimizer runs diverged: {record['diverged']} (target 0)")
    return out


def _checked(theta, where: str, cache, progress: bool, data_dir) -> dict:
    record = test_record(theta, cache=cache, progress=progress, data_dir=data_dir)
    short = shortfalls(record)
    if short:
        raise ShipRefusedError(f"{where}: not shipped, on the test set the θ misses " + "; ".join(short))
    return record


def ship(run_dir, dest_dir=None, *, cache=None, progress: bool = True, data_dir=None) -> Path:
    """Ship the θ of the run in ``run_dir`` (its panel-best, else its last θ) into the package data (or
    ``dest_dir``) when it meets every target on the test set; returns the θ file written.

    Raises:
      ShipRefusedError: naming each target it misses (nothing written).
    """
    theta = run_theta(run_dir)
    record = _checked(theta, str(run_dir), cache, progress, data_dir)
    return export_run(run_dir, dest_dir, record)


PROVENANCE_KEYS = {"theta": str, "config": dict, "steps_run": int}
"""What a provenance JSON of :func:`ship_file` must hold (the shipped recipe's core: what θ is, the meta-training
config and outer steps behind it)."""


def read_provenance(path) -> dict:
    """The provenance JSON at ``path``: an object with :data:`PROVENANCE_KEYS` of their types (``steps_run`` ≥ 0).
    ``ShipRefusedError`` naming the file and the first missing or malformed field."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ShipRefusedError(f"provenance {path}: not a readable JSON file ({e}); nothing shipped") from None
    if not isinstance(data, dict):
        raise ShipRefusedError(f"provenance {path}: must be a JSON object; nothing shipped")
    for key, kind in PROVENANCE_KEYS.items():
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, kind) or (kind is int and value < 0):
            raise ShipRefusedError(f"provenance {path}: field {key!r} must be a {kind.__name__}"
                                   f"{' >= 0' if kind is int else ''} (got {value!r}); nothing shipped")
    return data


def ship_file(theta_file, provenance_file, dest_dir=None, *, cache=None, progress: bool = True,
              data_dir=None) -> Path:
    """Ship the θ file ``theta_file`` with the recipe of ``provenance_file`` (:func:`read_provenance`) into the
    package data (or ``dest_dir``) when it meets every target on the test set; returns the θ file written.

    Raises:
      ShipRefusedError: naming the bad provenance or each target it misses (nothing written).
    """
    provenance = read_provenance(provenance_file)
    theta = load_theta(theta_file)
    record = _checked(theta, str(theta_file), cache, progress, data_dir)
    recipe = {**provenance, "theta_digest": theta_digest(theta), "shipped_on": RECORD_FILE}
    return write_shipped(theta, recipe, Path(dest_dir) if dest_dir else data_path(), record)
