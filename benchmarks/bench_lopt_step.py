"""Train-step time of the hierarchical learned optimizer vs optax.adam.

For each task, one jitted function runs `--steps` training steps (forward +
backward of the task + optimizer update) inside `lax.scan`; data and θ are
jit arguments.  Both optimizers are measured side by side in the same
process, alternating repetitions; we report the median ms/step, the ratio
lopt/adam, first-call (compile + one run) time, and optimizer-state bytes
per parameter.  Results: printed table + `benchmarks/results/lopt_step.json`.

Usage: `.venv/bin/python -m benchmarks.bench_lopt_step [--steps 100] [--reps 7]
[--tasks mlp784,mlp64,conv,rnn]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lopt_trainer.optimizer import hierarchical
from lopt_trainer.optimizer.optax_api import optax_lopt

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "lopt_step.json")


# ---------------------------------------------------------------- tasks


class MLP(nn.Module):
    sizes: tuple

    @nn.compact
    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        for i, s in enumerate(self.sizes):
            x = nn.Dense(s)(x)
            if i < len(self.sizes) - 1:
                x = nn.relu(x)
        return x


class ConvNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(16, (3, 3))(x))
        x = nn.relu(nn.Conv(16, (3, 3), strides=(2, 2))(x))
        return nn.Dense(10)(x.reshape(x.shape[0], -1))


class CharRNN(nn.Module):
    vocab: int = 256
    hidden: int = 32

    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(self.vocab, self.hidden)(tokens)
        h = nn.RNN(nn.GRUCell(self.hidden))(x)
        return nn.Dense(self.vocab)(h)


def _real_images(name, n, size=None):
    """(x float32 (n, H, W, C) in [0, 1], y int32 (n,)) from `datasets_cache`, or None.

    Uses the tree's real data loader when it exists; repeats examples when the
    train split has fewer than n.
    """
    try:
        import datasets_cache
        load = getattr(datasets_cache, "load_images", None)
        if load is None:
            return None
        data = load(name, size=size, splits=("train",))
        x, y = data.splits["train"]
        idx = np.arange(n) % len(x)
        return np.asarray(x[idx], np.float32) / 255.0, np.asarray(y[idx], np.int32)
    except Exception as err:  # pragma: no cover - depends on the tree's state
        print(f"({name} unavailable: {err!r}; using random data)")
        return None


def _real_bytes(name, n):
    """The first n UTF-8 bytes (int32 tokens) of text corpus `name`, or None."""
    try:
        import datasets_cache
        from datasets_cache.tokens import byte_tokens
        corpus = datasets_cache.load_text(name)
        toks = byte_tokens("\n".join(corpus.documents))
        return toks[np.arange(n) % len(toks)]
    except Exception as err:  # pragma: no cover - depends on the cache's state
        print(f"({name} unavailable: {err!r}; using random tokens)")
        return None


def make_task(name, steps, rng):
    """Returns (description, flax module, batched data (xs, ys) of `steps` batches, loss kind)."""
    if name == "mlp784":
        b = 128
        real = _real_images("fashion_mnist", steps * b)
        if real is not None:
            xs, ys = real
            src = "fashion_mnist"
        else:
            xs = rng.integers(0, 256, (steps * b, 28, 28, 1)).astype(np.float32) / 255.0
            ys = rng.integers(0, 10, steps * b).astype(np.int32)
            src = "random uint8-like"
        return (f"(a) MLP 784-128-10, batch 128 [{src}]", MLP((128, 10)),
                xs.reshape(steps, b, 28, 28, 1), ys.reshape(steps, b), "cls")
    if name == "mlp64":
        b = 64
        real = _real_images("digits", steps * b)
        if real is not None:
            (xs, ys), src = real, "digits"
        else:
            xs = rng.normal(size=(steps * b, 8, 8, 1)).astype(np.float32)
            ys = rng.integers(0, 10, steps * b).astype(np.int32)
            src = "random"
        return (f"(b) MLP 64-32-10 on 8x8, batch 64 [{src}]", MLP((32, 10)),
                xs.reshape(steps, b, 8, 8, -1), ys.reshape(steps, b), "cls")
    if name == "conv":
        b = 64
        real = _real_images("fashion_mnist", steps * b, size=14)
        if real is not None:
            (xs, ys), src = real, "fashion_mnist 14x14"
        else:
            xs = rng.normal(size=(steps * b, 14, 14, 1)).astype(np.float32)
            ys = rng.integers(0, 10, steps * b).astype(np.int32)
            src = "random"
        return (f"(c) conv 2x(3x3,16ch) on 14x14, batch 64 [{src}]", ConvNet(),
                xs.reshape(steps, b, 14, 14, -1), ys.reshape(steps, b), "cls")
    if name == "rnn":
        b, t = 32, 32
        toks, src = _real_bytes("shakespeare", steps * b * (t + 1)), "shakespeare bytes"
        if toks is None:
            toks, src = rng.integers(0, 256, steps * b * (t + 1)).astype(np.int32), "random"
        toks = toks.reshape(steps, b, t + 1)
        return (f"(c) GRU 32 hidden, seq 32, vocab 256, batch 32 [{src}]", CharRNN(),
                toks[:, :, :-1], toks[:, :, 1:], "seq")
    raise ValueError(f"unknown task {name!r}")


# ---------------------------------------------------------------- timing


def build_runner(model, tx_factory):
    """jit(scan over steps) of forward+backward+optimizer update; opt args passed in."""

    def loss_fn(params, x, y):
        logits = model.apply(params, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def run(params, opt_state, opt_args, xs, ys):
        tx = tx_factory(opt_args)

        def body(carry, batch):
            params, state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, *batch)
            updates, state = tx.update(grads, state, params, value=loss)
            return (optax.apply_updates(params, updates), state), loss

        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), (xs, ys))
        return params, opt_state, losses

    return jax.jit(run)


def state_bytes_per_param(state, params):
    n = sum(np.size(p) for p in jax.tree_util.tree_leaves(params))
    b = sum(np.asarray(x).nbytes for x in jax.tree_util.tree_leaves(state))
    return b / n


def bench_task(name, steps, reps, theta, rng):
    desc, model, xs, ys, _ = make_task(name, steps, rng)
    params = model.init(jax.random.PRNGKey(0), xs[0])
    n_params = sum(np.size(p) for p in jax.tree_util.tree_leaves(params))
    xs, ys = jnp.asarray(xs), jnp.asarray(ys)
    opts = {
        "adam": (lambda args: optax.adam(args), jnp.float32(1e-3)),
        "lopt": (lambda args: optax_lopt(args), theta),
    }
    runners, states, compile_s, mem = {}, {}, {}, {}
    for key, (factory, args) in opts.items():
        runner = build_runner(model, factory)
        state = factory(args).init(params)
        t0 = time.perf_counter()
        out = runner(params, state, args, xs, ys)
        jax.block_until_ready(out)
        compile_s[key] = time.perf_counter() - t0
        assert np.all(np.isfinite(np.asarray(out[2]))), f"{key} produced non-finite losses on {name}"
        runners[key], states[key] = runner, state
        mem[key] = state_bytes_per_param(state, params)
    times = {k: [] for k in opts}
    cpu = {k: [] for k in opts}
    for _ in range(reps):
        for key, (_, args) in opts.items():
            t0, c0 = time.perf_counter(), time.process_time()
            jax.block_until_ready(runners[key](params, states[key], args, xs, ys))
            times[key].append((time.perf_counter() - t0) / steps * 1e3)
            cpu[key].append((time.process_time() - c0) / steps * 1e3)
    # On a shared machine the minimum is the least contended estimate; the
    # median and CPU time (all threads) are kept for context.
    ms = {k: float(np.min(v)) for k, v in times.items()}
    med = {k: float(np.median(v)) for k, v in times.items()}
    cpu_med = {k: float(np.median(v)) for k, v in cpu.items()}
    return {
        "task": name, "description": desc, "n_params": int(n_params),
        "n_tensors": len(jax.tree_util.tree_leaves(params)),
        "ms_per_step": ms, "ms_per_step_median": med, "cpu_ms_per_step_median": cpu_med,
        "ms_per_step_all": times,
        "ratio_lopt_over_adam": ms["lopt"] / ms["adam"],
        "ratio_median": med["lopt"] / med["adam"],
        "ratio_cpu_time": cpu_med["lopt"] / cpu_med["adam"],
        "first_call_s": compile_s, "state_bytes_per_param": mem,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--tasks", default="mlp784,mlp64,conv,rnn")
    ap.add_argument("--out", default=RESULTS)
    args = ap.parse_args(argv)
    theta = hierarchical.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    rows = [bench_task(t, args.steps, args.reps, theta, rng) for t in args.tasks.split(",")]
    print(f"\n{'task':58s} {'params':>7s} {'adam ms':>8s} {'lopt ms':>8s} {'ratio':>6s} "
          f"{'med.ratio':>9s} {'cpu ratio':>9s} {'compile adam/lopt s':>20s} {'B/param adam/lopt':>18s}")
    for r in rows:
        ms, c, m = r["ms_per_step"], r["first_call_s"], r["state_bytes_per_param"]
        print(f"{r['description']:58s} {r['n_params']:7d} {ms['adam']:8.3f} {ms['lopt']:8.3f} "
              f"{r['ratio_lopt_over_adam']:6.2f} {r['ratio_median']:9.2f} {r['ratio_cpu_time']:9.2f} "
              f"{c['adam']:9.2f}/{c['lopt']:<9.2f} {m['adam']:8.1f}/{m['lopt']:<8.1f}")
    print("ms = min over repetitions of (time of one jitted scan) / steps; ratio = lopt/adam")
    result = {
        "benchmark": "lopt_step", "steps_per_call": args.steps, "reps": args.reps,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "jax": jax.__version__, "backend": jax.default_backend()},
        "tasks": rows,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(result, fh, indent=2)
    os.replace(tmp, args.out)
    print(f"\nsaved {args.out}")
    return result


if __name__ == "__main__":
    main()
