"""The HTML report of a run or evaluation folder (``python -m research report DIR``; ``make run`` ends with it).

:func:`write_report` looks in ``DIR`` (and its sub-folders, up to three levels down) for the outputs of each step
and writes ``DIR/report.html`` — one self-contained page, every figure embedded as base64 PNG at page width, no
folder beside it. The page opens with a summary table (one line per part, its key numbers) and a verdict, then a
table of contents. Sections, each saying "not run" when its output is absent:

* meta-training — a folder with ``metrics.jsonl`` and ``config.json`` (curves drawn with
  :func:`lopt_trainer.meta.metrics.plot_run`), excluding the runs inside a self-training experiment;
* the yardstick — ``yardstick.json`` of ``taskgen lopt eval --on valid|test`` (+ ``strip.png``);
* evaluation — ``eval_summary.json`` (+ ``boxplot_*.png``, ``eval.json``);
* implicit regularisation — ``implicit_reg.json`` (+ ``.png``);
* training itself — ``self_training.json`` (+ ``.png``).

Each section shows the exact command recorded in its folder's ``command.json``, or the command of the nearest
folder above it that recorded one (``make run`` records its own; its steps run inside it). A folder with none of
these outputs is an error, not an empty report.
"""

from __future__ import annotations

import base64
import html
import math
import tempfile
from pathlib import Path

from lopt_trainer.common.run_files import COMMAND_FILE, read_json
from lopt_trainer.evaluation.normalized import direction
from lopt_trainer.evaluation.scoring import label
from lopt_trainer.meta.metrics import plot_run, read_metrics
from taskgen.specfile import atomic_write_bytes

REPORT_FILE, ASSETS_DIR = "report.html", "report_files"
"""The report, and the figures folder earlier versions wrote beside it (skipped when looking for outputs)."""
MAX_DEPTH = 3

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #aaa}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f0f0f0}td.l,th.l{text-align:left}
img{width:100%;height:auto;border:1px solid #ddd}nav ol{columns:2}.verdict{font-size:1.1em;background:#eef5ee;
padding:.6em;border-left:4px solid #4a4}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.85em}.missing{color:#a33;font-style:italic}
.note{color:#555;font-size:.9em}
"""


def _walk(root: Path, depth: int = 0):
    yield root
    if depth >= MAX_DEPTH:
        return
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return
    for child in children:
        if child.name in (ASSETS_DIR, "runs"):
            continue
        yield from _walk(child, depth + 1)


def find_parts(root) -> dict:
    """``{"meta_train": [dirs], "yardstick": [dirs], "eval": [dirs], "implicit_reg": [dirs], "self_training":
    [dirs]}`` under root."""
    root = Path(root)
    parts = {"meta_train": [], "yardstick": [], "eval": [], "implicit_reg": [], "self_training": []}
    dirs = list(_walk(root))
    st = [d for d in dirs if (d / "self_training.json").exists()]
    for d in dirs:
        if (d / "eval_summary.json").exists():
            parts["eval"].append(d)
        in_panel = d.parent.name == "panel" and (d.parent.parent / "metrics.jsonl").exists()
        if (d / "yardstick.json").exists() and not in_panel:  # a run's panel evaluations belong to the run
            parts["yardstick"].append(d)
        if (d / "implicit_reg.json").exists():
            parts["implicit_reg"].append(d)
        if d in st:
            parts["self_training"].append(d)
        inside_st = any(s in d.parents for s in st)
        if (d / "metrics.jsonl").exists() and (d / "config.json").exists() and not inside_st:
            parts["meta_train"].append(d)
    return parts


# ------------------------------------------------------------------------------------------------ html bits


def _esc(x) -> str:
    return html.escape(str(x))


def _fmt(v, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        return f"{v:.{digits}g}"
    return _esc(v)


def _table(headers, rows, left: int = 1) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{_esc(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{_fmt(c)}</td>' for i, c in
                                    enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


class _Assets:
    """Embeds figures in the page as base64 PNGs; the figures drawn for the report go to a temporary folder."""

    def __init__(self, scratch: Path):
        self.dir = scratch
        self.n = 0

    def img(self, path, alt: str) -> str:
        """An inline (base64) ``<img>`` of ``path``; a note when the file is missing."""
        path = Path(path)
        if not path.exists():
            return f'<p class="missing">figure {_esc(path.name)} missing</p>'
        self.n += 1
        data = base64.b64encode(path.read_bytes()).decode()
        return f'<p><img alt="{_esc(alt)}" src="data:image/png;base64,{data}"></p>'


def _command(d: Path, root: Path | None = None) -> str:
    """The command recorded in ``d/command.json``, else the one of the nearest folder above ``d`` (up to
    ``root``) that ran it as one of its steps."""
    rec, where = read_json(d / COMMAND_FILE), d
    if not rec and root is not None:
        for parent in d.parents:
            if root != parent and root not in parent.parents:
                break
            rec, where = read_json(parent / COMMAND_FILE), parent
            if rec:
                break
    if not rec:
        return '<p class="note">command: not recorded (no command.json in this folder or above it)</p>'
    part = "" if where == d else f" (a step of the command that wrote {_esc(where.name or where)})"
    return f'<p class="note">command{part}, run in {_esc(rec.get("cwd", "?"))} at {_esc(rec.get("time_utc", "?"))}:' \
           f'</p><pre>{_esc(rec.get("command", ""))}</pre>'


def _rel(root: Path, d: Path) -> str:
    return "." if d == root else str(d.relative_to(root))


def _h2(anchor: str, title: str) -> str:
    """A section heading that the table of contents links to (``#anchor``)."""
    return f'<h2 id="{anchor}">{_esc(title)}</h2>'


def _missing(what: str) -> str:
    return f'<p class="missing">{_esc(what)}: not run (no output found).</p>'


# ------------------------------------------------------------------------------------------------ sections


def section_meta_train(root: Path, dirs, assets: _Assets) -> str:
    """Meta-training curves and a table of each run."""
    if not dirs:
        return _h2("meta-training", "Meta-training") + _missing("meta-training")
    out = [_h2("meta-training", "Meta-training")]
    for d in dirs:
        recs = [r for r in read_metrics(d) if r.get("kind") == "step"]
        cfg = read_json(d / "config.json") or {}
        out.append(f"<h3>run {_esc(_rel(root, d))}</h3>")
        loss = [r.get("meta_loss") for r in recs if r.get("meta_loss") is not None]
        k = max(1, len(loss) // 10)
        rows = [["outer steps", len(recs)], ["estimator", cfg.get("estimator")],
                ["outer optimizer", f'{cfg.get("outer_opt")} (lr {cfg.get("outer_lr")})'],
                ["filters", str(cfg.get("filters"))],
                ["meta-loss, first 10%", sum(loss[:k]) / k if loss else None],
                ["meta-loss, last 10%", sum(loss[-k:]) / k if loss else None],
                ["inner steps", sum(int(r.get("inner_steps", 0)) for r in recs)],
                ["seconds", sum(float(r.get("step_seconds", 0.0)) for r in recs)]]
        out.append(_table(["", "value"], rows, left=2))
        fig_dir = assets.dir / ("meta_" + "_".join(Path(_rel(root, d)).parts).replace(".", "root"))
        for p in plot_run(d, fig_dir):
            out.append(assets.img(p, p.stem))
        out.append(_command(d, root))
    return "\n".join(out)


def _ci(s: dict) -> str:
    return f"{s['value']:+.3f} [{s['low']:+.3f}, {s['high']:+.3f}]"


def section_yardstick(root: Path, dirs, assets: _Assets) -> str:
    """Each yardstick evaluation: the headline with intervals, the strip plot, θ against each baseline and each
    ``--against`` θ, per family."""
    if not dirs:
        return ""  # optional: shown only where an evaluation on the yardstick was run
    out = [_h2("yardstick", "The yardstick: normalized loss on a frozen task set")]
    for d in dirs:
        y = read_json(d / "yardstick.json") or {}
        s = y.get("summary") or {}
        out.append(f"<h3>θ {_esc(y.get('theta'))} on the {_esc(y.get('set'))} set ({_esc(_rel(root, d))})</h3>")
        out.append('<p class="note">' + "<br>".join(_esc(line) for line in y.get("legend", [])) + "</p>")
        rows = []
        for label_, summ in [("θ " + str(y.get("theta")), s)] + [("θ " + str(a["theta"]), a["summary"])
                                                                  for a in y.get("against", [])]:
            r = summ["rows"]["theta"]["final"]
            rows.append([label_, _ci(r["mean"]), _ci(r["median"]), _ci(r["iqm"]), summ.get("diverged")])
        for key, name in (("global_adamlr", "Global AdamLR"), ("per_task_adamlr@14", "per-task AdamLR@14")):
            r = s["rows"][key]["final"]
            rows.append([name, _ci(r["mean"]), _ci(r["median"]), _ci(r["iqm"]), "–"])
        out.append(_table(["normalized final loss (lower is better)", "mean [95% CI]", "median [95% CI]",
                           "IQM [95% CI]", "diverged runs"], rows, left=1))
        out.append(assets.img(d / "strip.png", "strip plot"))
        vs = [[name, v["final"]["wins"], v["final"]["ties"], v["final"]["losses"], v["curve"]["wins"],
               v["curve"]["ties"], v["curve"]["losses"]]
              for key, name in (("global_adamlr", "Global AdamLR"), ("per_task_adamlr@14", "per-task AdamLR@14"))
              for v in [s["versus"][key]]]
        out.append(_table(["θ against", "wins (final)", "ties", "losses", "wins (curve)", "ties", "losses"], vs))
        comps = [[f"{c['a']} − {c['b']}", _ci({"value": c["final"]["difference"]["mean"],
                                               "low": c["final"]["difference"]["low"],
                                               "high": c["final"]["difference"]["high"]}),
                  c["final"]["wins"], c["final"]["ties"], c["final"]["losses"]] for c in y.get("comparisons", [])]
        if comps:
            out.append(_table(["paired", "mean Δn [95% CI] (< 0: first better)", "wins", "ties", "losses"], comps))
        fam = [[f, r["tasks"], r["theta"], r["global_adamlr"], r["per_task_adamlr@14"]]
               for f, r in s.get("families", {}).items()]
        out.append(_table(["family", "tasks", "θ", "Global AdamLR", "per-task AdamLR@14"], fam))
        out.append(_command(d, root))
    return "\n".join(out)


def section_eval(root: Path, dirs, assets: _Assets) -> str:
    """Box plots and the summary table of each evaluation."""
    if not dirs:
        return _h2("evaluation", "Evaluation") + _missing("evaluation")
    out = [_h2("evaluation", "Evaluation: learned optimizer vs baselines"),
           '<p class="note">Improvement = log(baseline − best + ε) − log(learned − best + ε) on normalised '
           "losses, best = the lowest loss any run reached on the task, ε = 1e-3, diverged runs = the task's worst "
           "loss; per task averaged over seeds. &gt; 0: the learned optimizer is better. Speedup = steps the "
           "baseline needs to reach the learned optimizer's final loss ÷ steps the learned optimizer needs "
           "(∞: never within the budget).</p>"]
    for d in dirs:
        s = read_json(d / "eval_summary.json") or {}
        ev = read_json(d / "eval.json") or {}
        st = s.get("settings", {})
        out.append(f"<h3>evaluation {_esc(_rel(root, d))}</h3>")
        out.append(f'<p class="note">θ: {_esc(ev.get("theta_path"))} (digest {_esc(ev.get("theta_digest"))}); '
                   f'tasks: {_esc(s.get("n_tasks"))}; steps {_esc(st.get("steps"))}, seeds {_esc(st.get("seeds"))}, '
                   f'trial budgets {_esc(st.get("trials"))}, AdamLR grid {_esc(st.get("adamlr_trials"))}; '
                   f'learned optimizer diverged in {_esc(s.get("lopt", {}).get("diverged"))} of '
                   f'{_esc(s.get("lopt", {}).get("runs"))} runs.</p>')
        for p in s.get("plots", []):
            out.append(assets.img(d / p, p))
        rows = [[label(r["optimizer"]), r["group"], r["n_tasks"], r["final"]["median"], r["final"]["q25"],
                 r["final"]["q75"], r["frac_lopt_better"], r["auc"]["median"], r["auc"]["frac_positive"],
                 r["speedup_median"]] for r in s.get("rows", [])]
        out.append(_table(["baseline", "tasks", "n", "median impr. (final)", "q25", "q75", "learned better (final)",
                           "median impr. (AUC)", "learned better (AUC)", "median speedup"], rows, left=2))
        out.append(_command(d, root))
    return "\n".join(out)


def section_implicit_reg(root: Path, dirs, assets: _Assets) -> str:
    """Trajectories on (x − y)² and the final distances to the origin."""
    if not dirs:
        return (_h2("implicit-regularisation", "Implicit regularisation")
                + _missing("implicit-regularisation experiment"))
    out = [_h2("implicit-regularisation", "Implicit regularisation on (x − y)²")]
    for d in dirs:
        r = read_json(d / "implicit_reg.json") or {}
        out.append(f"<h3>{_esc(_rel(root, d))}</h3>")
        out.append(assets.img(d / "implicit_reg.png", "trajectories"))
        rows = []
        for i, a in enumerate(r.get("adam", {}).get("runs", [])):
            lo = r.get("lopt", {}).get("runs", [{}] * (i + 1))[i]
            rows.append([str(a["start"]), a["projection_norm"], a["final_norm"], lo.get("final_norm"),
                         a["final_loss"], lo.get("final_loss")])
        rows.append(["mean", r.get("mean_projection_norm"), r.get("adam", {}).get("mean_final_norm"),
                     r.get("lopt", {}).get("mean_final_norm"), None, None])
        out.append(_table(["start (x, y)", "‖projection‖", "Adam final ‖p‖", "learned final ‖p‖",
                           "Adam final loss", "learned final loss"], rows))
        out.append(f'<p class="note">settings: {_esc(r.get("settings", {}))}</p>')
        out.append(_command(d, root))
    return "\n".join(out)


def _interval(iv) -> str:
    return f"{_fmt(iv.get('mean'), 3)} [{_fmt(iv.get('low'), 3)}, {_fmt(iv.get('high'), 3)}]" if iv else "—"


def section_self_training(root: Path, dirs, assets: _Assets) -> str:
    """The self-training experiment: its figure, one row per run (seed, outer optimizer, meta-loss and, with a
    panel, the fresh θ's panel gain and the budget step), and the learned outer optimizer against the best Adam
    run per seed and pooled."""
    if not dirs:
        return _h2("training-itself", "Training itself") + _missing("self-training experiment")
    out = [_h2("training-itself", "Training itself: the learned optimizer as outer optimizer")]
    for d in dirs:
        s = read_json(d / "self_training.json") or {}
        out.append(f"<h3>{_esc(_rel(root, d))}</h3>")
        out.append(assets.img(d / "self_training.png", "self-training curves"))
        rows = [[r.get("seed", 0), r["name"], r["outer"], r["outer_lr"], r["steps"], r["first_meta_loss"],
                 r["final_meta_loss"], _interval(r.get("gain")), r.get("budget_step", "—")] for r in s.get("runs", [])]
        out.append(_table(["seed", "run", "outer", "lr", "steps", "meta-loss first 10%", "meta-loss last 10%",
                           "panel gain over the fresh θ (90%)", "measurable from step"], rows, left=2))
        if s.get("seeds"):
            rows = [[x["seed"], x["step"], x["best_adam"], x["lopt_score"], x["best_adam_score"],
                     _interval(x["lopt_vs_best_adam"])] for x in s["seeds"]]
            p = s.get("pooled") or {}
            rows.append(["pooled", "", "", "", "", _interval(p) + f" (ahead on {p.get('seeds_won')} of "
                         f"{p.get('seeds')} seeds)"])
            out.append(_table(["seed", "at step", "best Adam", "learned: panel score", "best Adam: panel score",
                               "learned − best Adam (90%)"], rows))
        out.append(f'<p class="note">trained θ: {_esc(s.get("theta_path"))}</p>')
        out.append(_command(d, root))
    return "\n".join(out)


SECTIONS = (("meta_train", "meta-training", "Meta-training"), ("yardstick", "yardstick", "The yardstick"),
            ("eval", "evaluation", "Evaluation"),
            ("implicit_reg", "implicit-regularisation", "Implicit regularisation"),
            ("self_training", "training-itself", "Training itself"))
"""``(part, anchor, title)`` of each section, in page order."""


def summary_rows(root: Path, parts: dict) -> list[list]:
    """One row per part found: ``[part, folder, what it shows]`` with the key numbers."""
    rows = []
    for d in parts["meta_train"]:
        loss = [r["meta_loss"] for r in read_metrics(d) if r.get("kind") == "step" and r.get("meta_loss") is not None]
        k = max(1, len(loss) // 10)
        what = (f"{len(loss)} outer steps; meta-loss {sum(loss[:k]) / k:.4g} → {sum(loss[-k:]) / k:.4g} "
                f"(first → last 10%)" if loss else "no outer step yet")
        rows.append(["meta-training", _rel(root, d), what])
    for d in parts.get("yardstick", []):
        y = read_json(d / "yardstick.json") or {}
        s = y.get("summary") or {}
        if s:
            m = s["rows"]["theta"]["final"]["mean"]
            g = s["versus"]["global_adamlr"]["final"]
            rows.append(["yardstick", _rel(root, d),
                         f"θ {y.get('theta')} on {s['tasks']} {y.get('set')} tasks: mean normalized loss "
                         f"{_ci(m)}; vs Global AdamLR {g['wins']} won / {g['ties']} tied / {g['losses']} lost"])
    for d in parts["eval"]:
        s = read_json(d / "eval_summary.json") or {}
        best = {(r["optimizer"], r["group"]): r for r in s.get("rows", [])}
        texts = []
        for group in ("unseen", "seen"):
            r = best.get(("global_adamlr", group))
            if r:
                texts.append(f"vs Global AdamLR on {r['n_tasks']} {group} tasks: learned better on "
                             f"{_pct(r['frac_lopt_better'])}, median improvement {_fmt(r['final']['median'], 3)}")
        rows.append(["evaluation", _rel(root, d), "; ".join(texts) or "no Global AdamLR row"])
    for d in parts["implicit_reg"]:
        rows.append(["implicit regularisation", _rel(root, d), implicit_reg_finding(read_json(d / "implicit_reg.json")
                                                                                 or {})])
    for d in parts["self_training"]:
        s = read_json(d / "self_training.json") or {}
        p = s.get("pooled")
        if p:
            what = (f"learned − best Adam outer optimizer, final panel score over {p['seeds']} seeds: "
                    f"{_interval(p)} (ahead on {p['seeds_won']} seeds)")
        else:
            what = "meta-loss (first → last 10%): " + ", ".join(
                f"{r['name']}{' seed ' + str(r['seed']) if len(s.get('seed_list') or []) > 1 else ''} "
                f"{_fmt(r['first_meta_loss'], 3)} → {_fmt(r['final_meta_loss'], 3)}" for r in s.get("runs", []))
        rows.append(["training itself", _rel(root, d), what])
    return rows


CONVERGED_LOSS = 1e-3
"""The final loss on (x − y)² below which a run counts as converged (its ‖p‖ then says where it settled)."""


def implicit_reg_finding(r: dict) -> str:
    """The implicit-regularisation result in words: the final norms, and which optimizer settled nearer the origin
    only when both converged (a run that did not reach the valley of minima says nothing about which minimum)."""
    adam, lopt = r.get("adam", {}), r.get("lopt", {})
    text = (f"mean final ‖p‖: Adam {_fmt(adam.get('mean_final_norm'), 3)}, learned "
            f"{_fmt(lopt.get('mean_final_norm'), 3)}")
    worst = {name: max((run.get("final_loss", math.inf) for run in part.get("runs", [])), default=math.inf)
             for name, part in (("Adam", adam), ("the learned optimizer", lopt))}
    unconverged = [name for name, loss in worst.items() if not loss < CONVERGED_LOSS]
    if unconverged:
        return (text + f"; {' and '.join(unconverged)} did not converge (final loss up to "
                f"{_fmt(max(worst.values()), 3)} ≥ {CONVERGED_LOSS:g}), so the norms say nothing about implicit "
                "regularisation")
    nearer = "the learned optimizer" if lopt["mean_final_norm"] < adam["mean_final_norm"] else "Adam"
    return text + f"; both converged, and {nearer} settled nearer the origin (the smaller-norm minimum)"


def yardstick_findings(root: Path, parts: dict) -> list[str]:
    """One sentence per paired comparison of each yardstick folder, stating a difference only where its 95 %
    interval excludes 0 (and the mean exceeds the tie floor), and θ against Global AdamLR in tasks won / tied /
    lost."""
    out = []
    for d in parts.get("yardstick", []):
        y = read_json(d / "yardstick.json") or {}
        s = y.get("summary") or {}
        if not s:
            continue
        for c in y.get("comparisons", []):
            diff = c["final"]["difference"]
            word = {-1: "better than", 1: "worse than", 0: "not distinguishable from"}[direction(diff)]
            out.append(f"On {s['tasks']} tasks of {y.get('set')}, θ {c['a']} is {word} θ {c['b']}: mean Δ normalized "
                       f"loss {_ci({'value': diff['mean'], 'low': diff['low'], 'high': diff['high']})}.")
        g = s["versus"]["global_adamlr"]["final"]
        out.append(f"θ {y.get('theta')} against Global AdamLR on the same tasks: {g['wins']} won, {g['ties']} tied, "
                   f"{g['losses']} lost.")
    return out


def verdict(root: Path, parts: dict) -> str:
    """Sentences on the learned optimizer against its start and the baselines: from the yardstick folders when
    there are any, else from the first evaluation found."""
    findings = yardstick_findings(root, parts)
    if findings:
        return " ".join(findings)
    for d in parts["eval"]:
        s = read_json(d / "eval_summary.json") or {}
        rows = {(r["optimizer"], r["group"]): r for r in s.get("rows", [])}
        r = rows.get(("global_adamlr", "unseen")) or rows.get(("global_adamlr", "seen"))
        if r:
            frac, med = r["frac_lopt_better"], r["final"]["median"]
            ok = frac is not None and not math.isnan(frac) and frac >= 0.5 and med > 0
            return (f"On {r['n_tasks']} {r['group']} tasks the learned optimizer beats Global AdamLR on {_pct(frac)}"
                    f" of them (median improvement {_fmt(med, 3)}): "
                    + ("it is ahead of the tuned baseline." if ok else "it does not beat the tuned baseline."))
    return "No evaluation in this folder: no verdict on the learned optimizer against the baselines."


def _pct(x) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.0f}%"


def write_report(root, out=None) -> Path:
    """Write the report of folder ``root`` to ``out`` (default ``root/report.html``); returns its path.
    ``FileNotFoundError`` when ``root`` is not a folder, ``ValueError`` when it holds none of the outputs a report
    shows."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    parts = find_parts(root)
    if not any(parts.values()):
        raise ValueError(
            f"{root} holds no run outputs to report (looked up to {MAX_DEPTH} folders down for a meta-training run "
            "(metrics.jsonl + config.json), yardstick.json, eval_summary.json, implicit_reg.json, self_training.json)")
    with tempfile.TemporaryDirectory(prefix="report-") as scratch:
        assets = _Assets(Path(scratch))
        body = [section_meta_train(root, parts["meta_train"], assets),
                section_yardstick(root, parts["yardstick"], assets),
                section_eval(root, parts["eval"], assets),
                section_implicit_reg(root, parts["implicit_reg"], assets),
                section_self_training(root, parts["self_training"], assets)]
    top = _command(root) if (root / COMMAND_FILE).exists() else ""
    summary = (_h2("summary", "Summary") + _table(["part", "folder", "result"], summary_rows(root, parts),
                                                         left=3)
               + f'<p class="verdict">{_esc(verdict(root, parts))}</p>')
    toc = "<nav><h2>Contents</h2><ol>" + "".join(
        f'<li><a href="#{anchor}">{_esc(title)}</a>{"" if parts[part] else " (not run)"}</li>'
        for part, anchor, title in SECTIONS if part != "yardstick" or parts[part]) + "</ol></nav>"
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Report: {_esc(root.name)}</title>"
            f"<style>{_CSS}</style></head><body><h1>Learned-optimizer report: {_esc(root.name)}</h1>"
            f"{summary}{toc}"
            f'<p class="note">folder {_esc(root)}</p>{top}' + "\n".join(body) + "</body></html>\n")
    path = Path(out) if out else root / REPORT_FILE
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
