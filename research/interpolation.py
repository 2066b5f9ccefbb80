"""θ between the hand-set start and a meta-trained θ: panel (and benchmark) scores along the line (WiSE-FT).

Meta-trained θ score above the hand-set θ on the panel and below it on the quality benchmark's unseen tasks
(``panel_vs_quality``): they gain early progress and lose late precision on tasks near their best loss. Wortsman et
al. 2022 (WiSE-FT, arXiv 2109.01903) found that averaging the weights of a fine-tuned model with those of the model
it started from keeps much of both: the fine-tuned gains in distribution and the start's robustness elsewhere.
This benchmark tries the same for learned optimizers: for each ``α`` it writes ``θ_α = (1 − α)·θ_from + α·θ_to``
(:func:`~lopt_trainer.theta.interpolate.interpolate_theta`; α = 0 and 1 are always included) to
``OUT/theta_a<α>.npz`` (``<α>`` as Python writes the float: ``a0.5``, ``a1.0``) and scores it on the quality panel (``taskgen lopt panel`` settings; baselines cached), into
``OUT/panel_a<α>`` or into a folder given with ``--reuse α DIR`` (an existing panel evaluation of exactly that θ
on exactly this panel: its recorded θ digest, evaluation settings and tasks must match). Per α it reports

* ``panel``: the panel score (mean over tasks of the improvement over Global AdamLR, clipped to ±3);
* ``vs_from`` / ``vs_to``: the mean panel score difference against α = 0 / α = 1, with a paired bootstrap 90%
  interval over the tasks (:func:`~lopt_trainer.evaluation.panel.paired_bootstrap`);

and, for each α given a quality benchmark result (``--quality α FILE``, ``research/results/<label>.json`` of
``make quality THETA=OUT/theta_a<α>.npz``; all of one task draw, each recording θ_α's digest), on its unseen
tasks: the mean score (``q_unseen``, over the tasks with a score), the §4 figures the result records
(``beats_global``, ``median``, ``beats_at14``, ``diverged``), and, when α = 0 has a result too, ``ahead_of_from`` (tasks
with a lower final loss than α = 0, by more than ε, as ``make ship`` counts) and ``q_vs_from`` with its interval
(:func:`~lopt_trainer.evaluation.compare.paired_comparison`).

The panel is the selection signal; the quality benchmark is the test. Choose α on the panel (or fix it beforehand)
and read the benchmark only to test that choice: picking α by the benchmark's unseen tasks would tune on them.

Usage: ``python -m research.interpolation --to THETA [--from handset] [--alpha 0.25 --alpha 0.5 ...]
[--out runs/interpolation] [--reuse α DIR ...] [--quality α FILE ...] [--set key=value ...] [--name
interpolation]`` (``--set``: a panel setting, as for ``taskgen lopt panel``). Writes
``research/results/NAME.json`` and ``NAME.png`` (panel score with its interval against α = 0, and the
benchmark's unseen score where given, over α). Bad input (a non-finite α, a θ that cannot be read or does not
match, a reused folder of another θ or another panel, quality results of other draws, of another θ or of an α not
in the sweep, an ``--out`` that is a file) stops with a message naming it (exit 2) before any evaluation runs or
anything is written.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from research.common import RESULTS_DIR, check_results_name, save, save_figure
from research.compare_panels import panel_scores
from research.panel_vs_quality import check_same_draw, quality_result, quality_tasks

DEFAULT_ALPHAS = (0.25, 0.5, 0.75)
TARGETS = ("global_adamlr", "median_improvement_global_adamlr", "per_task_adamlr@14", "unseen_diverged")
"""The §4 figures a quality result records under ``targets`` (unseen tasks), reported per α."""
QUALITY_COLUMNS = ("q_unseen", "beats_global", "median", "beats_at14", "diverged", "ahead_of_from", "q_vs_from",
                   "q_low", "q_high")


def alpha_tag(alpha: float) -> str:
    """The file-name tag of ``alpha``, distinct for distinct floats: ``0.25`` → ``a0.25``, ``1`` → ``a1.0``."""
    return f"a{float(alpha) + 0.0!r}"


def alphas_of(values) -> list[float]:
    """The sweep: ``values`` with 0 and 1 added, sorted, repeats dropped; ``ValueError`` for a non-finite one."""
    out = set()
    for v in values:
        a = float(v) + 0.0
        if not math.isfinite(a):
            raise ValueError(f"--alpha {v!r} is not a finite number")
        out.add(a)
    return sorted(out | {0.0, 1.0})


def _pair(values: list, what: str, alphas: list[float]) -> dict[float, str]:
    """``{α: value}`` of repeated ``--reuse``/``--quality α VALUE`` arguments; ``ValueError`` naming an α that is
    not a number, not in the sweep, or given twice."""
    out: dict[float, str] = {}
    for a_text, value in values:
        try:
            a = float(a_text) + 0.0
        except ValueError:
            raise ValueError(f"{what} {a_text!r}: α must be a number") from None
        if a not in alphas:
            raise ValueError(f"{what} {a_text!r}: α is not in the sweep {alphas} (add it with --alpha)")
        if a in out:
            raise ValueError(f"{what}: α {a:g} is given twice")
        out[a] = value
    return out


def check_reuse(eval_dir, digest: str, alpha: float, settings=None, tasks=None) -> None:
    """``ValueError`` unless ``eval_dir`` is an evaluation of the θ with ``digest`` (its ``eval.json``) and, when
    given, with these panel ``settings`` (a ``PanelSettings``: its evaluation settings) on these ``tasks`` (the
    panel's ``EvalTask`` list: the same task ids in the same groups)."""
    path = Path(eval_dir) / "eval.json"
    where = f"--reuse {alpha:g} {eval_dir}"
    try:
        record = json.loads(path.read_text())
        recorded = record["theta_digest"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{where}: no readable evaluation record ({path.name}: {e})") from None
    if recorded != digest:
        raise ValueError(f"{where}: evaluates θ {recorded}, not θ_α {digest}; give a folder of this α's θ or let "
                         "the benchmark evaluate it")
    if settings is not None:
        want = json.loads(json.dumps(settings.eval_settings().to_dict()))
        if record.get("settings") != want:
            raise ValueError(f"{where}: evaluated with other settings ({record.get('settings')}) than this panel "
                             f"({want})")
    if tasks is not None:
        try:
            have = {(t["task_id"], t["group"]) for t in record["tasks"]}
        except (KeyError, TypeError):
            have = None
        if have != {(t.task_id, t.group) for t in tasks}:
            raise ValueError(f"{where}: holds other tasks than this panel's {len(tasks)}; reuse an evaluation of the "
                             "same panel")


def quality_figures(result: dict, tasks: dict, from_tasks: dict | None) -> dict:
    """The unseen-task figures of one quality result (parsed JSON, and its checked ``lopt_tasks``; see the module
    docstring); ``from_tasks``: α = 0's ``lopt_tasks``. ``ValueError`` when the result has no §4 targets or no
    unseen task with a score."""
    from lopt_trainer.evaluation.compare import paired_comparison

    try:
        targets = {k: result["targets"][k]["measured"] for k in TARGETS}
    except (KeyError, TypeError):
        raise ValueError(f"no §4 targets ({', '.join(TARGETS)})") from None
    unseen = [t["score"] for t in tasks.values() if t["group"] == "unseen" and math.isfinite(t["score"])]
    if not unseen:
        raise ValueError("no unseen task with a score")
    out = {"q_unseen": float(np.mean(unseen)), "beats_global": targets["global_adamlr"],
           "median": targets["median_improvement_global_adamlr"], "beats_at14": targets["per_task_adamlr@14"],
           "diverged": targets["unseen_diverged"]}
    if from_tasks is not None:
        c = paired_comparison(tasks, from_tasks, "unseen")
        out.update(ahead_of_from=f"{c['ahead']}/{c['tasks']}", q_vs_from=c["score_diff"]["mean"],
                   q_low=c["score_diff"]["low"], q_high=c["score_diff"]["high"])
    return out


def read_quality(qfiles: dict[float, str], digests: dict[float, str]) -> dict[float, tuple[dict, dict]]:
    """``{α: (result, lopt_tasks)}`` of the ``--quality`` files, checked: readable, one task draw, each a result of
    θ_α (its ``theta_digest``) with §4 targets. ``ValueError`` naming the first file that is not."""
    quality = {}
    for a, f in qfiles.items():
        result, tasks = quality_result(f)  # names an unreadable or malformed file
        if result.get("theta_digest") != digests[a]:
            raise ValueError(f"--quality {a:g} {f}: a result of θ {result.get('theta_digest')}, not of θ_α "
                             f"{digests[a]}")
        try:
            quality_figures(result, tasks, None)
        except ValueError as e:
            raise ValueError(f"--quality {a:g} {f}: {e}") from None
        quality[a] = (result, tasks)
    check_same_draw([t for _, t in quality.values()], list(qfiles.values()))
    return quality


def prepare(theta_from, theta_to, alphas, out_dir, reuse: dict, settings, *, source_from="--from",
            source_to="--to") -> dict:
    """Everything the sweep needs, checked before any evaluation: ``{"thetas", "digests", "tasks", "dirs"}`` (θ_α,
    their digests, the panel's tasks, each α's panel folder). Raises ``ThetaFileError`` when the two θ do not
    match, ``ValueError`` for an overflowing α, an ``out_dir`` that is a file or a ``reuse`` folder of another θ,
    settings or tasks."""
    from lopt_trainer.evaluation.panel import panel_tasks
    from lopt_trainer.theta.interpolate import interpolate_theta
    from lopt_trainer.theta.load import theta_digest

    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ValueError(f"--out {out_dir}: is a file; give a folder for the θ files and panel evaluations")
    thetas = {a: interpolate_theta(theta_from, theta_to, a, source_a=source_from, source_b=source_to)
              for a in alphas}
    digests = {a: theta_digest(t) for a, t in thetas.items()}
    tasks = panel_tasks(settings)
    for a, d in reuse.items():
        check_reuse(d, digests[a], a, settings, tasks)
    dirs = {a: Path(reuse.get(a, Path(out_dir) / f"panel_{alpha_tag(a)}")) for a in alphas}
    return {"thetas": thetas, "digests": digests, "tasks": tasks, "dirs": dirs}


def sweep(prepared: dict, alphas, out_dir, reuse: dict, settings, *, progress: bool = True) -> list:
    """Write every θ_α to ``out_dir`` and score it on the panel of ``settings`` (a ``PanelSettings``), or read
    the ``reuse`` folder; returns ``[{alpha, theta_digest, panel_dir, scores}]`` in α order."""
    from lopt_trainer.evaluation.panel import evaluate_panel
    from lopt_trainer.theta.reference_io import save_reference_npz

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    points = []
    for a in alphas:
        save_reference_npz(prepared["thetas"][a], out_dir / f"theta_{alpha_tag(a)}.npz")
        panel_dir = prepared["dirs"][a]
        if a not in reuse:
            print(f"α = {a!r}: panel into {panel_dir}", flush=True)
            evaluate_panel(prepared["thetas"][a], prepared["tasks"], settings, panel_dir, progress=progress)
        scores, _ = panel_scores(panel_dir)
        points.append({"alpha": a, "theta_digest": prepared["digests"][a], "panel_dir": str(panel_dir),
                       "scores": scores})
    return points


def rows_of(points: list[dict], quality: dict[float, tuple[dict, dict]]) -> list[dict]:
    """One row per α: panel score, differences against α = 0 and α = 1, and (None where an α has no result) the
    quality figures when any α has one."""
    from lopt_trainer.evaluation.panel import paired_bootstrap

    by_alpha = {p["alpha"]: p for p in points}
    rows = []
    for p in points:
        row = {"alpha": p["alpha"], "theta_digest": p["theta_digest"],
               "panel": float(np.mean(list(p["scores"].values())))}
        for key, ref in (("vs_from", 0.0), ("vs_to", 1.0)):
            d = paired_bootstrap(p["scores"], by_alpha[ref]["scores"])
            row.update({key: d["mean"], f"{key}_low": d["low"], f"{key}_high": d["high"]})
        if quality:
            row.update(dict.fromkeys(QUALITY_COLUMNS if 0.0 in quality else QUALITY_COLUMNS[:5]))
        if p["alpha"] in quality:
            result, tasks = quality[p["alpha"]]
            row.update(quality_figures(result, tasks, quality[0.0][1] if 0.0 in quality else None))
        rows.append(row)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="theta_from", default="handset", help="θ at α = 0 [handset]")
    parser.add_argument("--to", dest="theta_to", required=True, help="θ at α = 1 (meta-trained from --from)")
    parser.add_argument("--alpha", action="append", default=None,
                        help=f"an interpolation weight (repeatable; default {list(DEFAULT_ALPHAS)}; 0 and 1 always)")
    parser.add_argument("--out", default="runs/interpolation", help="folder of the θ files and panel evaluations")
    parser.add_argument("--reuse", nargs=2, action="append", default=[], metavar=("ALPHA", "DIR"),
                        help="an existing panel evaluation of θ_α on this panel (θ digest, settings, tasks checked)")
    parser.add_argument("--quality", nargs=2, action="append", default=[], metavar=("ALPHA", "FILE"),
                        help="a make quality result of θ_α (its θ digest is checked)")
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        help="key=value: a PanelSettings field, as for taskgen lopt panel (default: the default panel)")
    parser.add_argument("--name", default="interpolation", help="results file name (research/results/NAME.json)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    check_results_name(parser, args.name)
    from lopt_trainer.errors import LOptError
    from lopt_trainer.evaluation.panel import PanelSettings
    from lopt_trainer.meta.config import parse_sets
    from lopt_trainer.theta.load import load_theta
    from lopt_trainer.theta.names import theta_label, theta_problem

    try:  # every check before the first evaluation; the sweep itself runs outside, so its own faults show
        settings = PanelSettings.from_dict(parse_sets(args.sets))
        alphas = alphas_of(args.alpha if args.alpha is not None else DEFAULT_ALPHAS)
        reuse = _pair(args.reuse, "--reuse", alphas)
        qfiles = _pair(args.quality, "--quality", alphas)
        for flag, name in (("--from", args.theta_from), ("--to", args.theta_to)):
            problem = theta_problem(name)
            if problem:
                raise ValueError(f"{flag}: {problem}")
        prepared = prepare(load_theta(args.theta_from), load_theta(args.theta_to), alphas, args.out, reuse, settings,
                           source_from=theta_label(args.theta_from), source_to=theta_label(args.theta_to))
        quality = read_quality(qfiles, prepared["digests"])
    except (TypeError, ValueError, FileNotFoundError, LOptError) as e:
        parser.exit(2, f"error: {e}\n")
    points = sweep(prepared, alphas, args.out, reuse, settings, progress=not args.no_progress)
    rows = rows_of(points, quality)
    save(args.name, rows, {"command": ["python", "-m", "research.interpolation", *(argv or sys.argv[1:])],
                           "from": args.theta_from, "to": args.theta_to, "out": args.out,
                           "points": [{**{k: v for k, v in p.items() if k != "scores"},
                                       "task_scores": p["scores"]} for p in points],
                           "quality_files": {repr(a): f for a, f in qfiles.items()}})
    plot(rows, RESULTS_DIR / f"{args.name}.png", args.theta_to)


def plot(rows: list[dict], path: Path, to_label: str) -> None:
    """Panel score against α with its 90% interval against α = 0, and the benchmark's unseen score where given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    a = np.array([r["alpha"] for r in rows])
    panel = np.array([r["panel"] for r in rows])
    base = panel[a == 0.0][0]
    err = np.array([[r["vs_from"] - r["vs_from_low"], r["vs_from_high"] - r["vs_from"]] for r in rows]).T
    ax.errorbar(a, panel, yerr=err, fmt="o-", capsize=3, label="panel (bars: 90% interval of the gain over α = 0, "
                "drawn around the score)")
    ax.axhline(base, color="0.6", lw=0.8)
    q = [(r["alpha"], r["q_unseen"]) for r in rows if r.get("q_unseen") is not None]
    if q:
        ax.plot(*zip(*q), "s--", color="C3", label="make quality, unseen tasks")
    ax.set_xlabel(f"α   (θ = (1 − α)·θ_from + α·θ_to;  to = {Path(to_label).name})")
    ax.set_ylabel("mean score (improvement over Global AdamLR, ±3)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
