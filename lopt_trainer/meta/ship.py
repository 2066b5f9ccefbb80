"""Shipping a θ only when it wins: the quality benchmark's targets (issue 19, section 4) checked before a run's θ
(or a θ file with its provenance) replaces the package's ``pretrained_theta.npz``.

``make pretrain`` writes its panel-best θ as a *candidate* (``RUN/candidate/``); ``make quality THETA=…`` measures
it; :func:`ship` copies it into the package data only when that measurement meets every target
(:func:`quality_shortfalls`), and otherwise says which targets fell short and writes nothing. One target compares
two measurements: the candidate must be ahead of the untrained hand-set θ (``make quality THETA=handset
QUALITY_LABEL=quality_handset``) on ≥ 60% of the unseen tasks, task by task
(:func:`lopt_trainer.evaluation.compare.paired_comparison`).

:func:`ship_file` ships a θ that is not a run's panel-best, e.g. a mixture of a meta-trained θ with the hand-set θ
(``taskgen lopt interpolate``), under the same targets; a provenance JSON says where it comes from and becomes the
shipped recipe.

Both :func:`ship` and :func:`ship_file` take a second pair of results on another task draw (``confirm``: the θ
and the hand-set θ measured with ``bench_quality --task-seed 1``) and then ship only when the θ meets every target
on both draws. One draw of 20
unseen tasks is too small a test for a θ chosen among many: the 0.5 mixture of the hand-set θ with the pretraining
state's step-1500 θ met every target on the benchmark's draw (one of 19 θ measured there) and, on the draw of task
seed 1, beat Global AdamLR on 50% of the unseen tasks and led the hand-set θ on 10 of 20
(``benchmarks/results/confirm1_*.json``).
"""

from __future__ import annotations

import json
from pathlib import Path

from lopt_trainer.errors import ShipRefusedError
from lopt_trainer.evaluation.compare import paired_comparison
from lopt_trainer.meta.export import export_run, write_shipped
from lopt_trainer.theta.load import load_theta, theta_digest
from lopt_trainer.theta.shipped import data_path

TARGETS = {"global_adamlr": ("frac_lopt_better", 0.60), "per_task_adamlr@14": ("frac_lopt_better", 0.25)}
"""Unseen-task targets: the fraction of tasks on which the learned optimizer beats each baseline."""

AHEAD_OF_HANDSET = 0.60
"""Unseen-task target: the fraction of tasks on which the candidate's final loss is below the hand-set θ's by more
than ε (:func:`lopt_trainer.evaluation.compare.paired_comparison`)."""


def quality_shortfalls(quality: dict, handset: dict | None = None) -> list[str]:
    """The targets a quality benchmark result (``benchmarks/results/LABEL.json`` of ``make quality``) misses,
    each as one line; empty when it meets them all: on unseen tasks, beats Global AdamLR on ≥ 60% with median
    improvement > 0, beats per-task AdamLR@14 on ≥ 25%, no learned-optimizer run diverged, and — when
    ``handset`` (the same benchmark's result for the hand-set θ) is given — ahead of the hand-set θ on ≥ 60%.
    ``ValueError`` when the result lacks the unseen rows of either baseline, or the two results cannot be
    compared (no per-task results, another θ than the hand-set one, other settings or other unseen tasks)."""
    rows = {r.get("baseline"): r for r in quality.get("rows", []) if isinstance(r, dict) and r.get("group") == "unseen"}
    out = []
    for baseline, (field, need) in TARGETS.items():
        got = _number(rows.get(baseline, {}), field, f"the unseen {baseline} row")
        if got < need:
            out.append(f"unseen tasks beaten over {baseline}: {got:.0%} (target ≥ {need:.0%})")
    median = _number(rows["global_adamlr"], "median_improvement", "the unseen global_adamlr row")
    if not median > 0:
        out.append(f"median improvement over global_adamlr on unseen tasks: {median:+.3f} (target > 0)")
    measured = ((quality.get("targets") or {}).get("unseen_diverged") or {}).get("measured")
    diverged = int(measured if measured is not None else (quality.get("lopt_divergence") or {}).get("diverged", 0))
    if diverged:
        out.append(f"learned-optimizer runs diverged on unseen tasks: {diverged} (target 0)")
    if handset is not None:
        frac, n = handset_lead(quality, handset)
        if not frac >= AHEAD_OF_HANDSET:
            out.append(f"unseen tasks ahead of the hand-set θ: {frac:.0%} of {n} (target ≥ {AHEAD_OF_HANDSET:.0%})")
    return out


def handset_lead(quality: dict, handset: dict) -> tuple[float, int]:
    """``(fraction, tasks)``: on how many of the unseen tasks the θ of ``quality`` ends below (by more than ε) the
    hand-set θ of
    ``handset`` (two results of the quality benchmark). ``ValueError`` naming the mismatch when they are not two
    measurements of the same unseen tasks with the same settings, or ``handset`` did not measure the hand-set θ
    (its ``theta_digest`` is not the hand-set θ's)."""
    if handset.get("theta_digest") != theta_digest(load_theta("handset")):
        raise ValueError(f"the hand-set result measured {handset.get('theta')!r} (digest "
                         f"{handset.get('theta_digest')}), not the hand-set θ")
    for name, r in (("quality", quality), ("hand-set", handset)):
        if not isinstance(r.get("lopt_tasks"), dict):
            raise ValueError(f"the {name} result has no per-task results (lopt_tasks): measure it again with "
                             "this version of benchmarks/bench_quality.py")
    if quality.get("settings") != handset.get("settings"):
        raise ValueError("the quality and hand-set results were measured with different settings")
    unseen = {k for k, v in quality["lopt_tasks"].items() if v.get("group") == "unseen"}
    if unseen != {k for k, v in handset["lopt_tasks"].items() if v.get("group") == "unseen"} or not unseen:
        raise ValueError("the quality and hand-set results were measured on different unseen tasks")
    paired = paired_comparison(quality["lopt_tasks"], handset["lopt_tasks"], "unseen")
    return paired["frac_ahead"], paired["tasks"]


def _number(row: dict, field: str, where: str) -> float:
    value = row.get(field)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"quality result: {where} has no number {field!r} (got {value!r})")
    return float(value)


def _check_targets(quality_file, handset_file, confirm=None) -> dict:
    """The parsed quality result when it meets every target against the hand-set result and, when ``confirm`` is a
    ``(quality, handset)`` pair of result files on another task draw, there too (the same θ, another set of unseen
    tasks); ``ShipRefusedError`` naming the shortfalls or why the results cannot be compared otherwise."""
    pairs = [(quality_file, handset_file)] + ([tuple(confirm)] if confirm is not None else [])
    results = []
    for q_file, h_file in pairs:
        try:
            quality = json.loads(Path(q_file).read_text())
            short = quality_shortfalls(quality, json.loads(Path(h_file).read_text()))
        except (OSError, ValueError) as e:
            raise ShipRefusedError(f"{q_file} against {h_file}: not shipped, {e}")
        if short:
            raise ShipRefusedError(f"{q_file}: not shipped, the θ misses " + "; ".join(short))
        results.append(quality)
    if confirm is not None:
        first, second = results
        if first.get("theta_digest") is None or first.get("theta_digest") != second.get("theta_digest"):
            raise ShipRefusedError(f"{confirm[0]}: not shipped, it measured θ {second.get('theta_digest')}, not the θ "
                                   f"of {quality_file} ({first.get('theta_digest')})")
        unseen = [{k for k, v in r["lopt_tasks"].items() if v.get("group") == "unseen"} for r in results]
        if unseen[0] == unseen[1]:
            raise ShipRefusedError(f"{confirm[0]}: not shipped, it measured the same unseen tasks as {quality_file}; "
                                   "confirm on another task draw (bench_quality --task-seed 1)")
    return results[0]


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


def ship_file(theta_file, quality_file, handset_file, provenance_file, dest_dir=None, *, confirm=None) -> Path:
    """Copy the θ file ``theta_file`` into the package data (or ``dest_dir``) with the recipe of
    ``provenance_file`` (:func:`read_provenance`, plus the quality results it was shipped on) when ``quality_file``
    meets every target against ``handset_file`` and measured that very θ (its ``theta_digest``); returns the path
    written. :class:`~lopt_trainer.errors.ShipRefusedError` naming the shortfall, the mismatch or the bad
    provenance otherwise (nothing written)."""
    provenance = read_provenance(provenance_file)
    quality = _check_targets(quality_file, handset_file, confirm)
    theta = load_theta(theta_file)
    got = theta_digest(theta)
    if quality.get("theta_digest") != got:
        raise ShipRefusedError(f"{quality_file}: not shipped, it measured θ {quality.get('theta_digest')} "
                               f"({quality.get('theta')}), not {theta_file} (θ {got})")
    recipe = {**provenance, "theta_digest": got,
              "shipped_on": {"quality": Path(quality_file).name, "handset": Path(handset_file).name,
                             "targets": quality.get("targets")}}
    return write_shipped(theta, recipe, Path(dest_dir) if dest_dir else data_path())


def ship(run_dir, quality_file, handset_file, dest_dir=None, *, confirm=None) -> Path:
    """Copy the panel-best θ of the run in ``run_dir`` (``RUN/best_theta.npz``) into the package data (or
    ``dest_dir``) when ``quality_file`` meets the targets against the hand-set θ's result ``handset_file`` (and
    ``confirm``'s ``(quality, handset)`` pair of another task draw, when given) and
    measured that very θ (the ``theta_digest`` it records — for older results, the digest of its ``theta`` file —
    is the one ``RUN/best.json`` records); returns the path written.
    :class:`~lopt_trainer.errors.ShipRefusedError` naming the shortfalls or the mismatch otherwise (nothing
    written)."""
    quality = _check_targets(quality_file, handset_file, confirm)
    measured, best = quality.get("theta"), Path(run_dir) / "best.json"
    want = json.loads(best.read_text()).get("theta_digest") if best.is_file() else None
    got = quality.get("theta_digest")  # the θ as measured: its file may have been replaced since
    if got is None:  # a result written before the benchmark recorded digests: read the file it names
        try:
            got = theta_digest(load_theta(measured)) if measured else None
        except (OSError, ValueError) as e:
            raise ShipRefusedError(f"{quality_file}: not shipped, the θ it measured ({measured}) cannot be read: {e}")
    if want is None or got != want:
        raise ShipRefusedError(f"{quality_file}: not shipped, it measured {measured}, which is not the panel-best θ "
                               f"of {run_dir} (measure RUN/candidate/pretrained_theta.npz after the last "
                               "`make pretrain`)")
    return export_run(run_dir, dest_dir)
