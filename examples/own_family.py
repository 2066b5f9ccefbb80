"""Your own family, from Python: sample its tasks, meta-train θ on them, judge θ on their held-out tasks, use θ.

Run from a checkout (the template family of ``examples/family_template`` stands in for yours)::

    PYTHONPATH=examples/family_template python examples/own_family.py --out runs/own

``--steps`` sets the outer steps (default 300: about 25 minutes on a 2-core CPU, most of it the panel's AdamLR
grid, computed once and cached); ``--small`` shrinks every setting to a smoke test of a minute or two.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import taskgen
from lopt_trainer import MetaTrainConfig, meta_train
from lopt_trainer.evaluation import task_sets, yardstick, yardstick_text
from lopt_trainer.optimizer.optax_api import optax_lopt
from lopt_trainer.theta.load import load_theta
from my_families.softmax_regression import SoftmaxRegressionFamily
from taskgen.specfile import write_specs

SMALL = dict(num_groups=2, tasks_per_group=2, truncation=10, horizon_min=20, horizon_max=60, outer_warmup=0,
             resample_every=5, checkpoint_every=1)
"""Settings of the smoke test (``--small``) over the recipe."""


def main(out: Path, steps: int, small: bool) -> None:
    # 1. Register the family (an installed package would be found through its entry point) and sample tasks:
    #    taskgen assigns each spec a meta_train or meta_test split.
    taskgen.register_family(SoftmaxRegressionFamily())
    specs = taskgen.generate_suite(["softmax_regression"], per_family=8 if small else 24, seed=1)
    out.mkdir(parents=True, exist_ok=True)
    suite = out / "mine.jsonl"
    write_specs(specs, suite)

    # 2. Meta-train with the recipe on those tasks: it trains on the meta_train specs and its panel scores θ on
    #    the meta_test specs at the start and the end (the same rule as `taskgen lopt meta-train --suite`).
    config = MetaTrainConfig.preset("recipe", suite=str(suite), steps=steps, panel_every=steps,
                                    **(SMALL if small else {}))
    result = meta_train(config, out / "run", resume=True, progress=not small)
    panel = (result.summary or {}).get("panel") or {}
    print(f"stopped: {result.stop_reason}; {panel.get('verdict', 'no panel')}")

    # 3. Compare the trained θ with its start on the held-out tasks (paired, 95% intervals, AdamLR baselines).
    held = [s for s in specs if s.split == "meta_test"]
    tasks = task_sets.source_tasks(held, max_tasks=4 if small else 12)
    trained, start = load_theta(out / "run"), load_theta("handset")
    results = [yardstick.evaluate_tasks(t, tasks, what="held-out tasks", progress=not small)
               for t in (trained, start)]
    comparison = yardstick.compare(results[0][1], results[1][1])
    for line in yardstick_text.comparison_lines("trained", "start", comparison, per_task=False):
        print(line)

    # 4. Use θ as an optax optimizer on a model of your own (here: logistic regression on toy data).
    x = jax.random.normal(jax.random.PRNGKey(0), (256, 8))
    y = (x @ jnp.arange(8.0) > 0).astype(jnp.float32)
    params = {"w": jnp.zeros(8), "b": jnp.zeros(())}

    def loss_fn(p):
        return optax.sigmoid_binary_cross_entropy(x @ p["w"] + p["b"], y).mean()

    tx = optax_lopt(trained)
    state = tx.init(params)

    @jax.jit
    def step(p, s):
        loss, g = jax.value_and_grad(loss_fn)(p)
        u, s = tx.update(g, s, p, value=loss)
        return optax.apply_updates(p, u), s, loss

    losses = []
    for _ in range(100):
        params, state, loss = step(params, state)
        losses.append(float(loss))
    print(f"θ as an optax optimizer: loss {losses[0]:.3f} -> {losses[-1]:.3f} in 100 steps")
    assert np.isfinite(losses[-1]) and losses[-1] < losses[0]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/own_family"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--small", action="store_true", help="a smoke test: tiny settings")
    args = parser.parse_args()
    main(args.out, args.steps, args.small)
