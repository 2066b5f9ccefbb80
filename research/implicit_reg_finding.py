"""Implicit regularisation, the paper's finding re-run for several θ: on ``(x − y)²`` does the learned optimizer end
closer to the origin than Adam?

Every point of the line ``x = y`` minimises ``(x − y)²``; Adam (like gradient descent) moves along ``(1, −1)`` only
and ends at the start's projection onto the line, so any drift towards the origin — a smaller-norm solution —
is the optimizer's own regularisation (Metz et al. 2020 report it for their learned optimizer). Per θ, Adam and
the learned optimizer run from ``--starts`` start points drawn uniformly in ``[−5, 5]²`` with ``--seed`` (the
"seeds" of the experiment: one run per start), for ``--steps`` steps (default 5000: the learned optimizer's steps
are ~0.002 long, so it needs a few thousand steps to reach the line at all; a comparison of norms means little
while its loss is still far from 0). Uses :func:`research.implicit_reg.run_implicit_reg`.

Per θ it reports: the mean final ‖p‖ of each optimizer and of the projection, the fraction of starts on which the
learned optimizer's ‖p‖ is below (above) Adam's by more than 1e-3 (paired by start), the mean absolute
difference of the two norms (a drift along the line of minima, in either direction), and the mean final loss of
each (is it at the minimum?). Output: ``research/results/implicit_reg.json`` and ``implicit_reg.png`` (per θ: learned vs Adam final
‖p‖ per start, and the final losses).

Usage: ``python -m research.implicit_reg_finding --theta handset --theta pretrained [--theta FILE.npz] [--starts
16] [--seed 0] [--steps 5000] [--adam-lr 0.05]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from research.common import RESULTS_DIR, save, save_figure


def draw_starts(n: int, seed: int) -> list[tuple[float, float]]:
    """``n`` start points uniform in ``[−5, 5]²`` from ``seed``."""
    rng = np.random.default_rng(seed)
    return [tuple(float(v) for v in p) for p in rng.uniform(-5.0, 5.0, size=(n, 2))]


def compare(result: dict) -> dict:
    """The figures of one θ's :func:`run_implicit_reg` result (see the module docstring)."""
    adam, lopt = result["adam"]["runs"], result["lopt"]["runs"]
    a = np.asarray([r["final_norm"] for r in adam])
    b = np.asarray([r["final_norm"] for r in lopt])
    return {"adam_norm": float(a.mean()), "lopt_norm": float(b.mean()),
            "projection_norm": float(result["mean_projection_norm"]),
            "frac_lopt_smaller": float(np.mean(b < a - 1e-3)), "frac_lopt_larger": float(np.mean(b > a + 1e-3)),
            "mean_abs_norm_diff": float(np.mean(np.abs(b - a))),
            "adam_loss": float(np.mean([r["final_loss"] for r in adam])),
            "lopt_loss": float(np.mean([r["final_loss"] for r in lopt])),
            "lopt_finite": all(r["finite"] for r in lopt)}


def main(argv=None) -> int:
    """Run the benchmark; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--theta", action="append", required=True, help="θ name (handset, pretrained, FILE.npz, RUN)")
    p.add_argument("--starts", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--adam-lr", type=float, default=0.05)
    args = p.parse_args(argv)
    if args.starts < 1 or args.steps < 1 or not args.adam_lr > 0:
        p.error("--starts and --steps must be >= 1 and --adam-lr > 0")

    from lopt_trainer.theta.load import load_theta
    from research.implicit_reg import run_implicit_reg

    thetas = {}
    for name in args.theta:  # every θ loaded before any run: a bad name fails at once
        try:
            thetas[name] = load_theta(name)
        except (OSError, ValueError) as e:
            p.error(f"--theta {name}: {e}")
    starts = draw_starts(args.starts, args.seed)
    rows, per_start = [], {}
    for name, theta in thetas.items():
        result = run_implicit_reg(theta, starts=starts, steps=args.steps, adam_lr=args.adam_lr, theta_path=name)
        rows.append({"theta": name, **compare(result)})
        per_start[name] = {k: [r["final_norm"] for r in result[k]["runs"]] for k in ("adam", "lopt")}
        per_start[name]["lopt_loss"] = [r["final_loss"] for r in result["lopt"]["runs"]]
    save("implicit_reg", rows, {"settings": {"starts": starts, "seed": args.seed, "steps": args.steps,
                                             "adam_lr": args.adam_lr}, "per_start": per_start})
    plot(rows, per_start, RESULTS_DIR / "implicit_reg.png")
    return 0


def _short(name: str) -> str:
    """A θ's name for a legend: a θ name as it is, a file by its folder's name (``runs/x/theta.npz`` → ``x``)."""
    path = Path(name)
    return name if len(path.parts) == 1 else path.parent.name if path.suffix else path.name


def plot(rows: list[dict], per_start: dict, path: Path) -> None:
    """Left: per start, the learned optimizer's final ‖p‖ against Adam's (below the diagonal: closer to the
    origin), one colour per θ. Right: mean final loss of each optimizer per θ (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, axl) = plt.subplots(1, 2, figsize=(11, 4.5))
    top = max(max(max(v["adam"]), max(v["lopt"])) for v in per_start.values())
    ax.plot([0, top], [0, top], color="grey", lw=0.8, ls="--")
    for name, v in per_start.items():
        ax.scatter(v["adam"], v["lopt"], s=18, label=_short(name))
    ax.set_xlabel("Adam: final ‖p‖")
    ax.set_ylabel("learned optimizer: final ‖p‖")
    ax.set_title("(x − y)²: below the diagonal = smaller-norm solution")
    ax.legend(fontsize=8)
    x = np.arange(len(rows))
    axl.bar(x - 0.2, [max(r["adam_loss"], 1e-12) for r in rows], 0.4, label="Adam")
    axl.bar(x + 0.2, [max(r["lopt_loss"], 1e-12) for r in rows], 0.4, label="learned")
    axl.set_yscale("log")
    axl.set_xticks(x, [_short(r["theta"]) for r in rows], fontsize=7)
    axl.set_ylabel("mean final loss (x − y)²")
    axl.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
