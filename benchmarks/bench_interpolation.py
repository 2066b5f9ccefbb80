"""θ between the hand-set start and a meta-trained θ: panel (and benchmark) scores along the line (WiSE-FT).

Meta-trained θ score above the hand-set θ on the panel and below it on the quality benchmark's unseen tasks
(``panel_vs_quality``): they gain early progress and lose late precision on tasks near their best loss. Wortsman et
al. 2022 (WiSE-FT, arXiv 2109.01903) found that averaging the weights of a fine-tuned model with those of the model
it started from keeps much of both: the fine-tuned gains in distribution and the start's robustness elsewhere.
This benchmark tries the same for learned optimizers: for each ``α`` it writes ``θ_α = (1 − α)·θ_from + α·θ_to``
(:func:`~lopt_trainer.theta.interpolate.interpolate_theta`; α = 0 and 1 are always included) to
``OUT/theta_a<α>.npz`` and scores it on the quality panel (``taskgen lopt panel`` settings; baselines cached), into
``OUT/panel_a<α>`` or into a folder given with ``--reuse α DIR`` (an existing panel evaluation of exactly that θ:
its recorded θ digest must match). Per α it reports

* ``panel``: the panel score (mean over tasks of the improvement over Global AdamLR, clipped to ±3);
* ``vs_from`` / ``vs_to``: the mean panel score difference against α = 0 / α = 1, with a paired bootstrap 90%
  interval over the tasks (:func:`~lopt_trainer.evaluation.panel.paired_bootstrap`);

and, for each α given a quality benchmark result (``--quality α FILE``, ``benchmarks/results/<label>.json`` of
``make quality THETA=OUT/theta_a<α>.npz``; all of one task draw), on its unseen tasks: the mean score,
``beats_global`` / ``beats_at14`` (the §4 fractions), and, when α = 0 has a result too, ``ahead_of_from`` (tasks
with a lower final loss than α = 0, by more than ε, as ``make ship`` counts) and ``q_vs_from`` with its interval
(:func:`~lopt_trainer.evaluation.compare.paired_comparison`).

The panel is the selection signal; the quality benchmark is the test. Choose α on the panel (or fix it beforehand)
and read the benchmark only to test that choice: picking α by the benchmark's unseen tasks would tune on them.

Usage: ``python -m benchmarks.bench_interpolation --to THETA [--from handset] [--alpha 0.25 --alpha 0.5 ...]
[--out runs/interpolation] [--reuse α DIR ...] [--quality α FILE ...] [--set key=value ...] [--name
interpolation]`` (``--set``: a panel setting, as for ``taskgen lopt panel``). Writes
``benchmarks/results/NAME.json`` and ``NAME.png`` (panel score with its interval against α = 0, and the
benchmark's unseen score where given, over α). Bad input (a non-finite α, a θ that cannot be read or does not
match, a reused folder of another θ or another panel, quality results of other draws or of an α not in the sweep)
stops with a message naming it (exit 2) before any evaluation runs or anything is written under
``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.common import RESULTS_DIR, check_results_name, save, save_figure  # noqa: E402
from benchmarks.compare_panels import panel_scores  # noqa: E402
from benchmarks.panel_vs_quality import check_same_draw, quality_tasks  # noqa: E402

DEFAULT_ALPHAS = (0.25, 0.5, 0.75)
TARGETS = ("global_adamlr", "median_improvement_global_adamlr", "per_task_adamlr@14", "unseen_diverged")
"""The §4 figures a quality result records under ``targets`` (unseen tasks), reported per α."""


def alpha_tag(alpha: float) -> str:
    """A file-name tag of ``alpha``: ``0.25`` → ``a0.25``, ``1`` → ``a1``, ``-0.5`` → ``a-0.5``."""
    return f"a{alpha:g}"


def alphas_of(values) -> list[float]:
    """The sweep: ``values`` with 0 and 1 added, sorted, repeats dropped; ``ValueError`` for a non-finite one."""
    out = set()
    for v in values:
        a = float(v)
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
            a = float(a_text)
        except ValueError:
            raise ValueError(f"{what} {a_text!r}: α must be a number") from None
        if a not in alphas:
            raise ValueError(f"{what} {a_text!r}: α is not in the sweep {alphas} (add it with --alpha)")
        if a in out:
            raise ValueError(f"{what}: α {a:g} is given twice")
        out[a] = value
    return out


def check_reuse(eval_dir, digest: str, alpha: float) -> None:
    """``ValueError`` unless ``eval_dir`` is a panel evaluation of the θ with ``digest`` (its ``eval.json``)."""
    path = Path(eval_dir) / "eval.json"
    try:
        recorded = json.loads(path.read_text())["theta_digest"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"--reuse {alpha:g} {eval_dir}: no readable evaluation record ({path.name}: {e})") from None
    if recorded != digest:
        raise ValueError(f"--reuse {alpha:g} {eval_dir}: evaluates θ {recorded}, not θ_α {digest}; give a folder "
                         "of this α's θ or let the benchmark evaluate it")


def quality_figures(result: dict, tasks: dict, from_tasks: dict | None) -> dict:
    """The unseen-task figures of one quality result (parsed JSON, and its checked ``lopt_tasks``; see the module
    docstring); ``from_tasks``: α = 0's ``lopt_tasks``. ``ValueError`` when the result has no §4 targets."""
    from lopt_trainer.evaluation.compare import paired_comparison

    try:
        targets = {k: result["targets"][k]["measured"] for k in TARGETS}
    except (KeyError, TypeError):
        raise ValueError(f"no §4 targets ({', '.join(TARGETS)})") from None
    unseen = [t["score"] for t in tasks.values() if t["group"] == "unseen"]
    out = {"q_unseen": float(np.mean(unseen)), "beats_global": targets["global_adamlr"],
           "median": targets["median_improvement_global_adamlr"], "beats_at14": targets["per_task_adamlr@14"],
           "diverged": targets["unseen_diverged"]}
    if from_tasks is not None:
        c = paired_comparison(tasks, from_tasks, "unseen")
        out.update(ahead_of_from=f"{c['ahead']}/{c['tasks']}", q_vs_from=c["score_diff"]["mean"],
                   q_low=c["score_diff"]["low"], q_high=c["score_diff"]["high"])
    return out


def _read_json(path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable JSON result ({e})") from None


def sweep(theta_from, theta_to, alphas, out_dir, reuse: dict, settings=None, *, source_to="--to",
          progress: bool = True) -> list:
    """Write and score every θ_α on the panel of ``settings`` (a ``PanelSettings``; default: the default panel);
    returns ``[{alpha, theta_digest, panel_dir, scores}]`` in α order. Checks every ``reuse`` folder before the
    first evaluation (``ValueError`` naming it)."""
    from lopt_trainer.evaluation.panel import PanelSettings, evaluate_panel, panel_tasks
    from lopt_trainer.theta.interpolate import interpolate_theta
    from lopt_trainer.theta.load import theta_digest
    from lopt_trainer.theta.reference_io import save_reference_npz

    thetas = {a: interpolate_theta(theta_from, theta_to, a, source_b=source_to) for a in alphas}
    digests = {a: theta_digest(t) for a, t in thetas.items()}
    for a, d in reuse.items():
        check_reuse(d, digests[a], a)
    settings = PanelSettings() if settings is None else settings
    tasks = panel_tasks(settings)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    points = []
    for a in alphas:
        save_reference_npz(thetas[a], out_dir / f"theta_{alpha_tag(a)}.npz")
        panel_dir = Path(reuse.get(a, out_dir / f"panel_{alpha_tag(a)}"))
        if a not in reuse:
            print(f"α = {a:g}: panel into {panel_dir}", flush=True)
            evaluate_panel(thetas[a], tasks, settings, panel_dir, progress=progress)
        scores, _ = panel_scores(panel_dir)
        points.append({"alpha": a, "theta_digest": digests[a], "panel_dir": str(panel_dir), "scores": scores})
    names = {frozenset(p["scores"]) for p in points}
    if len(names) > 1:
        raise ValueError("the panel folders hold different task sets; reuse only evaluations of the default panel")
    return points


def rows_of(points: list[dict], quality: dict[float, tuple[dict, dict]]) -> list[dict]:
    """One row per α: panel score, differences against α = 0 and α = 1, and the quality figures where given."""
    from lopt_trainer.evaluation.panel import paired_bootstrap

    by_alpha = {p["alpha"]: p for p in points}
    rows = []
    for p in points:
        row = {"alpha": p["alpha"], "theta_digest": p["theta_digest"],
               "panel": float(np.mean(list(p["scores"].values())))}
        for key, ref in (("vs_from", 0.0), ("vs_to", 1.0)):
            d = paired_bootstrap(p["scores"], by_alpha[ref]["scores"])
            row.update({key: d["mean"], f"{key}_low": d["low"], f"{key}_high": d["high"]})
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
                        help="an existing panel evaluation of θ_α (its θ digest is checked)")
    parser.add_argument("--quality", nargs=2, action="append", default=[], metavar=("ALPHA", "FILE"),
                        help="a make quality result of θ_α")
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        help="key=value: a PanelSettings field, as for taskgen lopt panel (default: the default panel)")
    parser.add_argument("--name", default="interpolation", help="results file name (benchmarks/results/NAME.json)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    check_results_name(parser, args.name)
    from lopt_trainer.errors import LOptError
    from lopt_trainer.evaluation.panel import PanelSettings
    from lopt_trainer.meta.config import parse_sets
    from lopt_trainer.theta.load import load_theta
    from lopt_trainer.theta.names import theta_problem

    try:
        settings = PanelSettings.from_dict(parse_sets(args.sets))
        alphas = alphas_of(args.alpha if args.alpha is not None else DEFAULT_ALPHAS)
        reuse = _pair(args.reuse, "--reuse", alphas)
        qfiles = _pair(args.quality, "--quality", alphas)
        quality = {}
        for a, f in qfiles.items():
            tasks = quality_tasks(f)  # names an unreadable or malformed file
            quality[a] = (_read_json(f), tasks)
        check_same_draw([t for _, t in quality.values()], list(qfiles.values()))
        for a, (result, tasks) in quality.items():
            try:
                quality_figures(result, tasks, None)
            except ValueError as e:
                raise ValueError(f"--quality {a:g} {qfiles[a]}: {e}") from None
        for flag, name in (("--from", args.theta_from), ("--to", args.theta_to)):
            problem = theta_problem(name)
            if problem:
                raise ValueError(f"{flag}: {problem}")
        theta_from, theta_to = load_theta(args.theta_from), load_theta(args.theta_to)
        points = sweep(theta_from, theta_to, alphas, args.out, reuse, settings, source_to=args.theta_to,
                       progress=not args.no_progress)
    except (TypeError, ValueError, FileNotFoundError, LOptError) as e:
        parser.exit(2, f"error: {e}\n")
    rows = rows_of(points, quality)
    save(args.name, rows, {"from": args.theta_from, "to": args.theta_to, "out": args.out,
                           "points": [{**{k: v for k, v in p.items() if k != "scores"},
                                       "task_scores": p["scores"]} for p in points],
                           "quality_files": {f"{a:g}": f for a, f in qfiles.items()}})
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
    q = [(r["alpha"], r["q_unseen"]) for r in rows if "q_unseen" in r]
    if q:
        ax.plot(*zip(*q), "s--", color="C3", label="make quality, unseen tasks")
    ax.set_xlabel(f"α   (θ = (1 − α)·θ_from + α·θ_to;  to = {Path(to_label).name})")
    ax.set_ylabel("mean score (improvement over Global AdamLR, ±3)")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
