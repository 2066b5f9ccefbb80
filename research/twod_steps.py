"""Step sizes of the learned optimizer on the 2-D test functions: does meta-training teach it to shrink its steps?

On the ``twod`` problems every θ tried loses to tuned Adam by 2–7 log units. The hierarchical optimizer's step is
``direction · exp(exp_mult · magnitude) · step_mult`` per scalar (Metz et al. 2020), so only the magnitude head
(and a direction output near 0) can make the steps small enough to settle into a minimum. This benchmark runs
each θ (and Adam at the best of a learning-rate grid, for reference) for ``--steps`` steps from ``--starts`` start
points drawn in each problem's usual domain, and records per step the update length ``‖Δp‖₂`` and the loss gap
``f(p) − f_min``.

Output: ``research/results/twod_step_size.json`` (median step length and loss gap over the starts at steps
1, 10, 100, 1000 and the last, per problem and optimizer) and ``twod_step_size.png`` (step length and loss gap
against the step, log scales, one column per problem). The update rule is not changed; this only measures it.

Usage: ``python -m research.twod_steps --theta handset --theta pretrained [--theta RUN/theta.npz]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from research.common import RESULTS_DIR, save, save_figure

PROBLEMS = ("logsumexp", "line_minimum", "bowl", "beale")
ADAM_LRS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
REPORT_STEPS = (1, 10, 100, 1000)


def problem_task(problem: str):
    """The noiseless ``twod`` task of ``problem`` on its usual domain."""
    from families.twod import DOMAINS
    from taskgen import TaskSpec, build_task, get_family

    config = {"problem": problem, "noise_std": 0.0, "start_box": DOMAINS[problem]}
    if problem == "bowl":
        config.update(cond=10.0, angle=0.7853981633974483)
    return build_task(TaskSpec.create("twod", get_family("twod").version, 0, config, "meta_test"))


def run(task, tx, starts, steps: int, valid_every: int = 10):
    """``(step lengths [n, steps], losses [n, steps + 1])`` of ``tx`` from each start (params as ``task.init``
    makes them); the learned optimizer is fed the validation loss every ``valid_every`` steps."""
    from lopt_trainer.optimizer.optax_api import validation_feed

    if not isinstance(tx, optax.GradientTransformationExtraArgs) and not hasattr(tx, "observe_validation"):
        tx = optax.with_extra_args_support(tx)
    batch = task.sample_batch(task.splits["train"], jax.random.PRNGKey(0))

    def loss_fn(p):
        out = task.loss(p, batch, jax.random.PRNGKey(0))
        return out[0] if isinstance(out, tuple) else out

    def one(params):
        state0 = tx.init(params)
        observe = validation_feed(tx, state0)

        def step(carry, t):
            params, state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, state = tx.update(grads, state, params, value=loss)
            params = optax.apply_updates(params, updates)
            if observe is not None:
                state = jax.lax.cond((t + 1) % valid_every == 0, lambda s: observe(s, loss_fn(params)),
                                     lambda s: s, state)
            length = jnp.sqrt(sum(jnp.sum(jnp.square(u)) for u in jax.tree_util.tree_leaves(updates)))
            return (params, state), (length, loss_fn(params))

        _, (lengths, losses) = jax.lax.scan(step, (params, state0), jnp.arange(steps))
        return lengths, jnp.concatenate([loss_fn(params)[None], losses])

    lengths, losses = jax.jit(jax.vmap(one))(starts)
    return np.asarray(lengths), np.asarray(losses)


def summary(lengths, gaps) -> dict:
    """Median over starts of the step length and loss gap at the report steps and the last step."""
    steps = [s for s in REPORT_STEPS if s <= lengths.shape[1]] + [lengths.shape[1]]
    return {"step_length": {str(s): float(np.median(lengths[:, s - 1])) for s in sorted(set(steps))},
            "loss_gap": {str(s): float(np.median(gaps[:, s])) for s in sorted(set(steps))}}


def main(argv=None):
    from families.twod import F_MIN
    from lopt_trainer.optimizer.optax_api import optax_lopt
    from lopt_trainer.theta.load import load_theta

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--theta", action="append", default=None, help="θ names/files (default handset, pretrained)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--starts", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    thetas = args.theta or ["handset", "pretrained"]
    rows, curves = [], {}
    for problem in PROBLEMS:
        task = problem_task(problem)
        keys = jax.random.split(jax.random.PRNGKey(args.seed), args.starts)
        starts = jax.vmap(task.init)(keys)
        fmin = F_MIN[problem]
        runs = {}
        for name in thetas:
            runs[f"lopt {name}"] = run(task, optax_lopt(load_theta(name)), starts, args.steps)
        best = None
        for lr in ADAM_LRS:  # Adam at the learning rate with the lowest median final loss
            lengths, losses = run(task, optax.adam(lr), starts, args.steps)
            final = float(np.median(np.nan_to_num(losses[:, -1], nan=np.inf)))
            if best is None or final < best[0]:
                best = (final, lr, lengths, losses)
        runs[f"adam lr={best[1]:g}"] = (best[2], best[3])
        curves[problem] = {}
        for name, (lengths, losses) in runs.items():
            gaps = np.maximum(losses - fmin, 1e-12)
            curves[problem][name] = (np.median(lengths, axis=0), np.median(gaps, axis=0))
            rows.append({"problem": problem, "optimizer": name, **{
                f"{k} @{s}": v for k, d in summary(lengths, gaps).items() for s, v in d.items()}})
    save("twod_step_size", rows, {"steps": args.steps, "starts": args.starts, "seed": args.seed, "thetas": thetas})
    plot(curves, RESULTS_DIR / "twod_step_size.png")


def plot(curves: dict, path: Path) -> None:
    """Step length and loss gap (medians over starts) against the step, one column per problem."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(curves), figsize=(4 * len(curves), 6.5), squeeze=False)
    for col, (problem, runs) in enumerate(curves.items()):
        for name, (length, gap) in runs.items():
            axes[0, col].plot(np.arange(1, len(length) + 1), length, label=name)
            axes[1, col].plot(np.arange(len(gap)), gap, label=name)
        axes[0, col].set_title(problem)
        axes[0, col].legend(fontsize=7)
        for row, label in ((0, "‖Δp‖ (median over starts)"), (1, "f(p) − f_min")):
            axes[row, col].set_xscale("log")
            axes[row, col].set_yscale("log")
            axes[row, col].set_xlabel("step")
            if col == 0:
                axes[row, col].set_ylabel(label)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
