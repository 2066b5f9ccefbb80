"""Throughput of the inner training loop.

Measured side by side in one process, on an MLP 784-128-10 classification task with batch 128 on the real
Fashion-MNIST (``--sizes 64,...`` uses the 8×8 digits; other input sizes fall back to random arrays, and the table
says so):

1. ``scan``: :func:`lopt_trainer.inner.loop.train` with Adam (chunks of ``lax.scan``, evaluation included) vs
   ``python``: a Python ``for`` loop over one jitted train step (same batch sampling, loss and update).
2. ``grid``: the 14-point AdamLR grid as one vmapped :func:`train_many` call vs 14 sequential :func:`train`
   calls (compiled once, reused).

Compile time is excluded from the rates (each variant is run once to warm up); we report the median of
``--reps`` repetitions. Results: printed table + ``benchmarks/results/inner_loop.json``.

Usage: ``python -m benchmarks.bench_inner_loop [--steps 500] [--reps 3] [--sizes 64,32,10 --batch 64]``
(non-default sizes save to ``inner_loop_mlp<sizes>.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.common import save
from families.base import SPLITS, Task
from lopt_trainer.inner import baselines, loop as inner_loop

SIZES = (784, 128, 10)  # set from --sizes in main()
BATCH = 128


@dataclasses.dataclass(frozen=True)
class _Spec:
    task_id: str = "bench-mlp"
    seed: int = 0


def _init(key):
    params = {}
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        key, k = jax.random.split(key)
        params[f"dense_{i}"] = {"w": jax.random.normal(k, (a, b)) * (2.0 / a) ** 0.5, "b": jnp.zeros((b,))}
    return params


def _loss(params, batch, key):
    del key
    x = batch["x"]
    n = len(SIZES) - 1
    for i in range(n):
        x = x @ params[f"dense_{i}"]["w"] + params[f"dense_{i}"]["b"]
        if i < n - 1:
            x = jax.nn.relu(x)
    return optax.softmax_cross_entropy_with_integer_labels(x, batch["y"]).mean()


def _sample(split, key):
    idx = jax.random.randint(key, (BATCH,), 0, split["x"].shape[0])
    return {"x": split["x"][idx], "y": split["y"][idx]}


REAL_DATA = {784: "fashion_mnist", 64: "digits"}


def _splits(n_examples: int):
    """``({split: {"x", "y"}}, source name)``: the first ``n_examples`` of each real split, flattened and scaled
    to [0, 1], when the input size matches a dataset of the cache; random arrays otherwise."""
    name = REAL_DATA.get(SIZES[0])
    if name is not None and SIZES[-1] == 10:
        from datasets_cache import load_images

        data = load_images(name)
        out = {}
        for s in SPLITS:
            x, y = data.splits[s]
            idx = np.arange(n_examples) % len(x)
            out[s] = {"x": np.asarray(x[idx], np.float32).reshape(n_examples, -1) / 255.0,
                      "y": np.asarray(y[idx], np.int32)}
        return out, name
    rng = np.random.default_rng(0)
    return {s: {"x": rng.normal(size=(n_examples, SIZES[0])).astype(np.float32),
                "y": rng.integers(0, SIZES[-1], size=n_examples).astype(np.int32)} for s in SPLITS}, "random data"


def mlp_task(n_examples: int = 4096) -> tuple[Task, str]:
    """The benchmark's MLP task and the name of its data source."""
    splits, source = _splits(n_examples)
    task = Task(spec=_Spec(), init=_init, loss=_loss, sample_batch=_sample, splits=splits,
                normalizer=lambda l: l / np.log(SIZES[-1]), static_key=("bench-mlp", SIZES, BATCH, n_examples),
                batch_size=BATCH)
    return task, source


def python_loop(task, lr, steps):
    """Steps/s of a Python loop over a jitted step (compile excluded). Returns (rate, compile seconds)."""
    tx = optax.adam(lr)

    @jax.jit
    def step(params, opt_state, t, key, split):
        kb, kl = jax.random.split(jax.random.fold_in(key, t))
        loss, grads = jax.value_and_grad(_loss)(params, _sample(split, kb), kl)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    key = jax.random.PRNGKey(0)
    params = task.init(key)
    opt_state = tx.init(params)
    split = task.splits["train"]
    t0 = time.perf_counter()
    jax.block_until_ready(step(params, opt_state, 0, key, split))
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for t in range(steps):
        params, opt_state, loss = step(params, opt_state, t, key, split)
    jax.block_until_ready(loss)
    return steps / (time.perf_counter() - t0), compile_s


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sizes", default="784,128,10", help="MLP layer sizes, comma-separated")
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args(argv)
    global SIZES, BATCH
    SIZES, BATCH = tuple(int(v) for v in args.sizes.split(",")), args.batch
    steps, reps = args.steps, args.reps
    task, source = mlp_task()
    factory = baselines.optimizer_factory("adamlr", steps)
    grid = baselines.trial_grid("adamlr")
    kw = dict(eval_every=steps // 5, eval_batches=4)

    first = inner_loop.train(task, factory, steps, hparams={"learning_rate": 1e-3}, **kw)
    scan_rates = []
    for _ in range(reps):
        r = inner_loop.train(task, factory, steps, hparams={"learning_rate": 1e-3}, **kw)
        scan_rates.append(steps / r.wall_time)
    py = [python_loop(task, 1e-3, steps) for _ in range(reps)]
    py_rates = [p[0] for p in py]

    many_first = inner_loop.train_many(task, factory, grid, [0], steps, **kw)
    grid_times, seq_times = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        inner_loop.train_many(task, factory, grid, [0], steps, **kw)
        grid_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for hp in grid:
            inner_loop.train(task, factory, steps, hparams=hp, **kw)
        seq_times.append(time.perf_counter() - t0)

    n = len(grid)
    scan_rate, py_rate = statistics.median(scan_rates), statistics.median(py_rates)
    g_t, s_t = statistics.median(grid_times), statistics.median(seq_times)
    rows = [
        {"variant": "scan train() (evals incl.)", "runs": 1, "steps_per_s": scan_rate, "seconds": steps / scan_rate,
         "compile_s": first.compile_time, "speedup": scan_rate / py_rate},
        {"variant": "python loop, jitted step", "runs": 1, "steps_per_s": py_rate, "seconds": steps / py_rate,
         "compile_s": statistics.median(p[1] for p in py), "speedup": 1.0},
        {"variant": "AdamLR grid, vmapped", "runs": n, "steps_per_s": n * steps / g_t, "seconds": g_t,
         "compile_s": many_first.compile_time, "speedup": s_t / g_t},
        {"variant": "AdamLR grid, 14 sequential", "runs": n, "steps_per_s": n * steps / s_t, "seconds": s_t,
         "compile_s": 0.0, "speedup": 1.0},
    ]
    name = "inner_loop" if args.sizes == "784,128,10" and BATCH == 128 else f"inner_loop_mlp{'-'.join(map(str, SIZES))}"
    save(name, rows, {"task": f"MLP {'-'.join(map(str, SIZES))}, batch {BATCH}, {source}", "steps": steps,
                      "reps": reps, "load_average": list(os.getloadavg())})


if __name__ == "__main__":
    main()
