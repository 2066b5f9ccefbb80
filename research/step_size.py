"""Relative step size and training loss of several θ over one inner run: where does a meta-trained θ differ?

For each task (an id of the default suite) and θ this runs the learned optimizer for ``--steps`` minibatch steps
from ``--seeds`` initialisations, feeding it the inner-valid loss every 10 steps as the evaluation does, and
records per step the relative update length ``‖Δp‖₂ / ‖p‖₂`` and the task's normalised training loss
(``task.normalizer``, the units of the quality benchmark's curves). A θ that is faster early but ends higher, or
the reverse, shows here as a gap in step size that the final-loss tables only show as a sign.

Output: ``research/results/NAME.json`` (per task and θ, the mean over seeds of both quantities averaged over a
window of ±25 steps around steps 10, 100, 300, 600 and the last) and ``NAME.png`` (both against the step, one
column per task, 50-step moving averages). The update rule is not changed; this only measures it.

Usage: ``python -m research.step_size --task mlp_ae-06029dcf8bc4 --theta handset --theta pretrained``.
The defaults are the two unseen ``mlp_ae`` tasks of ``make quality``, where every pretrained θ measured so far
ends behind the hand-set θ.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from research.common import RESULTS_DIR, check_results_name, save, save_figure

DEFAULT_TASKS = ("mlp_ae-06029dcf8bc4", "mlp_ae-08990ce1a0df")
REPORT_STEPS = (10, 100, 300, 600)
WINDOW = 25
VALID_EVERY = 10


def runner(task, seeds: int, steps: int):
    """A function ``θ → (relative step lengths [seeds, steps], normalised train losses [seeds, steps])`` of the
    learned optimizer with meta-parameters θ on ``task``, compiled once per task (θ and the task's data are jit
    arguments, so every further θ reuses the program).

    Seed ``s`` initialises with ``task.init(PRNGKey(s))`` (not the evaluation's initialisations, so these are not
    ``make quality``'s runs) and draws the batch of step ``t`` with ``fold_in(fold_in(PRNGKey(1000), s), t)``; the
    inner-valid loss of the post-update parameters is fed every :data:`VALID_EVERY` steps. ``‖p‖`` is the norm of
    the post-update parameters; a diverged run gives NaN from its divergence on."""
    from lopt_trainer.optimizer.optax_api import optax_lopt, validation_feed

    def loss_fn(p, split, key):
        out = task.loss(p, task.sample_batch(split, key), key)
        return out[0] if isinstance(out, tuple) else out

    def one(seed, theta, train, valid):
        tx = optax_lopt(theta)
        params = task.init(jax.random.PRNGKey(seed))
        state0 = tx.init(params)
        observe = validation_feed(tx, state0)
        base = jax.random.fold_in(jax.random.PRNGKey(1000), seed)

        def step(carry, t):
            params, state = carry
            key = jax.random.fold_in(base, t)
            loss, grads = jax.value_and_grad(loss_fn)(params, train, key)
            updates, state = tx.update(grads, state, params, value=loss)
            params = optax.apply_updates(params, updates)
            if observe is not None:
                vkey = jax.random.fold_in(key, 1)
                state = jax.lax.cond((t + 1) % VALID_EVERY == 0,
                                     lambda s: observe(s, loss_fn(params, valid, vkey)), lambda s: s, state)
            rel = optax.global_norm(updates) / jnp.maximum(optax.global_norm(params), 1e-12)
            return (params, state), (rel, task.normalizer(loss))

        _, out = jax.lax.scan(step, (params, state0), jnp.arange(steps))
        return out

    compiled = jax.jit(jax.vmap(one, in_axes=(0, None, None, None)))
    seed_ids, train, valid = jnp.arange(seeds), task.splits["train"], task.splits["inner_valid"]

    def measure(theta):
        rel, norm = compiled(seed_ids, theta, train, valid)
        return np.asarray(rel), np.asarray(norm)

    return measure


def windowed(values: np.ndarray, steps) -> dict:
    """Mean over seeds and over ±:data:`WINDOW` steps around each of ``steps`` (1-based step numbers)."""
    per_step = values.mean(axis=0)
    return {str(s): float(per_step[max(0, s - 1 - WINDOW):s + WINDOW].mean()) for s in steps}


def main(argv=None):
    from lopt_trainer.theta.load import load_theta
    from taskgen import build_task, resolve_spec

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", action="append", default=None, help="task ids (default: %s)" % ", ".join(DEFAULT_TASKS))
    parser.add_argument("--theta", action="append", default=None, help="θ names/files (default handset, pretrained)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--name", default="step_size", help="results file name (research/results/NAME.json)")
    args = parser.parse_args(argv)
    if args.steps < 2 * WINDOW or args.seeds < 1:
        parser.error(f"--steps must be at least {2 * WINDOW} and --seeds at least 1")
    check_results_name(parser, args.name)
    # repeated names are measured once
    tasks = list(dict.fromkeys(args.task or DEFAULT_TASKS))
    thetas = list(dict.fromkeys(args.theta or ["handset", "pretrained"]))
    loaded, built = {}, {}
    for name in thetas:  # every θ and task loaded before any run: a bad name fails at once
        try:
            loaded[name] = load_theta(name)
        except (OSError, ValueError) as e:
            parser.error(f"--theta {name}: {e}")
    for task_id in tasks:
        try:
            built[task_id] = build_task(resolve_spec(task_id))
        except (KeyError, ValueError) as e:
            parser.error(f"--task {task_id}: {e}")
    report = [s for s in REPORT_STEPS if s < args.steps] + [args.steps]
    rows, curves = [], {}
    for task_id, task in built.items():
        curves[task_id] = {}
        measure = runner(task, args.seeds, args.steps)
        for name, theta in loaded.items():
            rel, norm = measure(theta)
            curves[task_id][name] = (rel.mean(axis=0), norm.mean(axis=0))
            rows.append({"task": task_id, "theta": name,
                         **{f"step/‖p‖ @{s}": v for s, v in windowed(rel, report).items()},
                         **{f"loss @{s}": v for s, v in windowed(norm, report).items()}})
    save(args.name, rows, {"steps": args.steps, "seeds": args.seeds, "thetas": thetas, "tasks": tasks,
                           "window": WINDOW, "valid_every": VALID_EVERY})
    plot(curves, RESULTS_DIR / f"{args.name}.png")
    return 0


def theta_label(name: str) -> str:
    """A short legend label for a θ name or file: the name, the file's stem, or its folder for a generic stem."""
    path = Path(name)
    if path.suffix != ".npz":
        return name
    return path.parent.name if path.stem in ("theta", "pretrained_theta", "best_theta") else path.stem


def theta_labels(names) -> dict[str, str]:
    """``{name: label}``: :func:`theta_label` of each; where two names would share it, the file's folder and name
    (``late_meta_loss/theta_step300.npz``), and where those still collide, the name as given."""
    labels = {n: theta_label(n) for n in names}
    for longer in (lambda n: "/".join(Path(n).parts[-2:]), str):
        counts = Counter(labels.values())
        labels = {n: (label if counts[label] == 1 else longer(n)) for n, label in labels.items()}
    return labels


def plot(curves: dict, path: Path) -> None:
    """Relative step length and normalised training loss (50-step moving averages, each drawn at its window's
    centre, as the JSON's windows are) against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kernel = np.ones(2 * WINDOW) / (2 * WINDOW)
    fig, axes = plt.subplots(2, len(curves), figsize=(4.5 * len(curves), 6.5), squeeze=False)
    for col, (task_id, runs) in enumerate(curves.items()):
        labels = theta_labels(runs)
        for name, (rel, norm) in runs.items():
            x = np.arange(len(rel) - len(kernel) + 1) + WINDOW + 1
            axes[0, col].plot(x, np.convolve(rel, kernel, "valid"), label=labels[name])
            axes[1, col].plot(x, np.convolve(norm, kernel, "valid"), label=labels[name])
        axes[0, col].set_title(task_id, fontsize=9)
        axes[0, col].set_yscale("log")
        axes[0, col].legend(fontsize=7)
        for row, label in ((0, "‖Δp‖ / ‖p‖"), (1, "normalised train loss")):
            axes[row, col].set_xlabel("step")
            if col == 0:
                axes[row, col].set_ylabel(label)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
