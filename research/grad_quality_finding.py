"""Gradient-quality diagnostic: how much signal one outer step's meta-gradient carries, by estimator, number of
estimators and slots, at fixed θ (see :mod:`research.grad_quality`).

    python -m research.grad_quality_finding                      # the recipe, hand-set and shipped θ, PES
    python -m research.grad_quality_finding --estimators pes,backprop,hybrid --groups 16,8 --slots 2,4 -k 4

Prints a table and writes ``research/results/grad_quality.json`` (CPU model recorded).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from research.common import RESULTS_DIR, cpu_model

RECIPE = Path(__file__).resolve().parent.parent / "lopt_trainer" / "data" / "pretrain_config.json"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(RECIPE), help="meta-train config (default: the pretraining recipe)")
    p.add_argument("--theta", action="append", help="θ names/paths (default: handset and pretrained)")
    p.add_argument("--estimators", default="pes")
    p.add_argument("--groups", default="16", help="estimators per outer step (comma-separated)")
    p.add_argument("--slots", default="2", help="slots (antithetic pairs) per estimator (comma-separated)")
    p.add_argument("-k", type=int, default=4, help="independent estimates of the step")
    p.add_argument("--burn-in", type=int, default=2)
    p.add_argument("--out", default=str(RESULTS_DIR / "grad_quality.json"))
    args = p.parse_args(argv)

    from lopt_trainer.meta.config import load_config
    from lopt_trainer.meta.trainer import load_specs_for
    from lopt_trainer.theta.load import load_theta
    from research.grad_quality import format_row, run_grid
    from taskgen.jax_cache import enable_compilation_cache

    enable_compilation_cache()
    base = load_config(args.config)
    specs = load_specs_for(base.split().tasks)[0]
    names = args.theta or ["handset", "pretrained"]
    thetas = {n: load_theta(n) for n in names}
    printed = []

    def echo(row):
        if not printed:
            print(format_row(row, header=True))
        print(format_row(row), flush=True)
        printed.append(row)

    rows = run_grid(base, thetas, specs, estimators=args.estimators.split(","),
                    groups=[int(x) for x in args.groups.split(",")], slots=[int(x) for x in args.slots.split(",")],
                    k=args.k, burn_in=args.burn_in, echo=echo)
    out = Path(args.out)
    old = json.loads(out.read_text()) if out.is_file() else {}
    result = {"benchmark": "grad_quality", "cpu": cpu_model(), "config": args.config,
              "rows": old.get("rows", []) + rows if old.get("cpu") == cpu_model() else rows}
    from lopt_trainer.common.run_files import write_json

    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
