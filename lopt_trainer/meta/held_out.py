"""The run's quick held-out check: θ on a few fixed held-out tasks, one unperturbed inner run each, every
``eval_every`` outer steps (the quality panel, :mod:`lopt_trainer.meta.run_panel`, is the careful measure)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from lopt_trainer.meta.truncation import TaskFns, UnrollSettings, fresh_problem, unroll


def _eval_run(theta, data, key, *, fns: TaskFns, lopt, settings: UnrollSettings, steps: int):
    k_init, k_run, k_test, k_tl = jax.random.split(key, 4)
    ps = fresh_problem(theta, fns, lopt, k_init, steps)
    ps, meta, active, clipped = unroll(theta, ps, data, k_run, fns, lopt, settings, length=steps)
    test = fns.loss(ps.params, fns.sample_batch(data["test"], k_test), k_tl)
    test = jnp.where(ps.diverged | ~jnp.isfinite(test), settings.loss_clip,
                     jnp.minimum(fns.normalizer(test), settings.loss_clip))
    tail = max(1, steps // 10)
    return {"mean_loss": jnp.mean(meta), "final_loss": jnp.mean(meta[-tail:]), "test_loss": test,
            "clipped": jnp.sum(clipped)}


@functools.lru_cache(maxsize=None)
def _jitted(fns: TaskFns, lopt, settings: UnrollSettings, steps: int):
    return jax.jit(functools.partial(_eval_run, fns=fns, lopt=lopt, settings=settings, steps=steps))


def evaluate(theta, tasks, lopt, settings: UnrollSettings, steps: int, seed: int = 0) -> dict:
    """``{task_id: {"mean_loss", "final_loss", "test_loss", "clipped"}}`` (normalised losses) of running θ for
    ``steps`` inner steps on each task (init and batches from ``seed``; the same every call)."""
    # Every step counts here: the check reports the whole run's mean loss whatever the training meta-loss weighs
    # (set before the compile cache, so runs differing only in meta_loss_from share the compiled check).
    settings = dataclasses.replace(settings, meta_loss_from=0)
    out = {}
    for i, task in enumerate(tasks):
        fns = TaskFns.of(task)
        splits = settings.splits_needed(lopt.observe_validation is not None) + ("test",)
        data = {s: task.splits[s] for s in dict.fromkeys(splits)}
        res = _jitted(fns, lopt, settings, int(steps))(theta, data, jax.random.PRNGKey(seed * 7919 + i))
        out[task.spec.task_id] = {k: float(v) for k, v in jax.device_get(res).items()}
    return out
