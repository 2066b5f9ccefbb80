"""How much signal one outer step's meta-gradient carries: K independent estimates of the same step, compared.

At a fixed θ and a fixed draw of groups (the run's own planning, from its seed), the problems are first advanced
``burn_in`` outer steps with θ held fixed (so slots are mid-run, as during training, not all at step 0). Then
the same outer step is estimated ``k`` times with independent perturbations and batches (same tasks, same inner
states, same resets; :func:`lopt_trainer.meta.work.work_keys` with ``redraw``), each combined over estimators
exactly as an outer step combines them. From the ``k`` estimates ``g_1 … g_k``:

* ``cosine``: the mean pairwise cosine similarity of the estimates (1: every estimate points the same way;
  about 0: noise dominates). For estimates ``g = s + n`` with independent noise, ``cos ≈ SNR / (1 + SNR)``.
* per block of θ (:func:`theta_blocks`: the LSTM, each layer of the per-parameter MLP, the MLP's output layer
  — the direction/magnitude heads —, the message projections): ``snr = max(‖ḡ‖² − tr Σ / k, 0) / tr Σ``, the
  squared norm of the expected estimate (debiased) over the noise of one estimate, ``tr Σ`` the summed
  per-entry variance across the ``k`` estimates.
* ``seconds``: wall time of one estimate (compiles excluded, reported apart), and the inner steps it ran.

Used by ``python -m research grad-quality`` and ``python -m research.grad_quality_finding``.
"""

from __future__ import annotations

import copy
import dataclasses
import time

import jax
import numpy as np
from jax.flatten_util import ravel_pytree

from lopt_trainer.meta.config import MetaTrainConfig
from lopt_trainer.meta.outer import combine_estimates
from lopt_trainer.meta.plan import check_family_draw, plan_step
from lopt_trainer.meta.state import TrainerState
from lopt_trainer.meta.task_sampler import SamplerState
from lopt_trainer.meta.work import compute_work, make_context

_BLOCK_NAMES = {"lstm": "lstm", "to_lstm": "messages", "to_mlp": "messages", "initial_from_lstm": "messages",
                "initial_from_mlp": "messages"}


def theta_blocks(theta) -> list[str]:
    """The block name of every θ tensor, in tree order: ``lstm``, ``mlp.0``, ``mlp.1``, … (hidden layers of the
    per-parameter MLP), ``mlp.out`` (its last layer: the update's direction and magnitude heads and the messages
    to the LSTM), ``messages`` (projections between LSTM and MLP and their initial values); any other top-level
    key of θ is a block of its own name."""
    leaves = jax.tree_util.tree_flatten_with_path(theta)[0]
    mlp_layers = sorted({int(str(p[-1].key)[1:]) for p, _ in leaves if str(p[0].key) == "mlp"})
    names = []
    for path, _ in leaves:
        top = str(getattr(path[0], "key", path[0]))
        if top == "mlp":
            layer = int(str(path[-1].key)[1:])
            names.append("mlp.out" if layer == mlp_layers[-1] else f"mlp.{layer}")
        else:
            names.append(_BLOCK_NAMES.get(top, top))
    return names


def quality_figures(estimates: np.ndarray, blocks: np.ndarray) -> dict:
    """Figures of ``k`` raveled estimates ``(k, d)`` with the block name of every entry ``(d,)`` (see the module
    docstring): ``cosine``, ``snr`` (whole θ) and ``blocks`` ``{name: {"snr", "norm", "noise", "size"}}``.
    ``ValueError`` for fewer than 2 estimates."""
    g = np.asarray(estimates, np.float64)
    k = g.shape[0]
    if k < 2:
        raise ValueError(f"need at least 2 estimates to measure their agreement, got {k}")
    unit = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-300)
    cos = unit @ unit.T
    pairs = cos[np.triu_indices(k, 1)]

    def snr(cols):
        mean = g[:, cols].mean(0)
        noise = float(np.sum(g[:, cols].var(0, ddof=1)))
        signal = max(float(mean @ mean) - noise / k, 0.0)
        return {"snr": signal / noise if noise > 0 else float("inf"), "norm": float(np.sqrt(mean @ mean)),
                "noise": float(np.sqrt(noise)), "size": int(np.sum(cols))}

    names = list(dict.fromkeys(blocks.tolist()))
    return {"cosine": float(pairs.mean()), "snr": snr(np.ones(g.shape[1], bool))["snr"],
            "blocks": {n: snr(blocks == n) for n in names}}


def gradient_quality(config: MetaTrainConfig, theta, specs, *, k: int = 4, burn_in: int = 2) -> dict:
    """``k`` independent estimates of one outer step of ``config`` at ``theta`` on the training ``specs`` (see the
    module docstring); returns :func:`quality_figures` plus ``seconds`` (median wall time of one estimate,
    compiles excluded), ``compile_seconds`` (all of them), ``inner_steps`` (of one estimate), ``meta_loss``,
    ``tasks`` (distinct tasks in the step) and ``estimators``."""
    s = config.split()
    check_family_draw(s.plan, specs)
    ctx = make_context(s.worker, specs)
    state = TrainerState(0, theta, None, [], SamplerState())
    compile_s = 0.0
    for _ in range(burn_in):  # θ fixed: advance the problems so the measured step starts mid-run
        works = plan_step(ctx, s.plan, state)
        for w in works:
            _, state.estimators[w.index], stats, c = compute_work(ctx, theta, state.estimators[w.index], w)
            state.sampler.done[w.index] = [bool(x) for x in np.asarray(stats["done"])]
            compile_s += c
        state.step += 1
    works = plan_step(ctx, s.plan, state)
    kept = [jax.device_get(e) for e in state.estimators]  # every estimate starts from these (calls consume theirs)
    flat, seconds, inner, losses = [], [], [], []
    for r in range(1, k + 1):
        t0 = time.perf_counter()
        results = [compute_work(ctx, theta, copy.deepcopy(kept[w.index]), w, redraw=r) for w in works]
        grads, weights, loss = combine_estimates(results, s.plan.grad_combine)
        grad = jax.tree_util.tree_map(lambda *x: sum(wt * g for wt, g in zip(weights, x)), *grads)
        flat.append(np.asarray(ravel_pytree(jax.device_get(grad))[0]))
        c = sum(res[3] for res in results)
        compile_s += c
        seconds.append(time.perf_counter() - t0 - c)
        inner.append(sum(int(res[2]["active_steps"]) for res in results))
        losses.append(loss)
    blocks = np.repeat(np.asarray(theta_blocks(theta)),
                       [int(np.size(x)) for x in jax.tree_util.tree_leaves(theta)])
    out = quality_figures(np.stack(flat), blocks)
    out.update(seconds=float(np.median(seconds)), compile_seconds=compile_s, inner_steps=int(np.mean(inner)),
               meta_loss=float(np.mean(losses)), estimators=len(works),
               tasks=len({t for w in works for t in w.task_ids}), k=k, burn_in=burn_in,
               settings={f: getattr(config, f) for f in ("estimator", "sigma", "truncation", "num_groups",
                                                         "tasks_per_group", "bp_clip", "seed", "grad_combine",
                                                         "family_draw")})
    return out


def grid_configs(base: MetaTrainConfig, estimators=("pes",), groups=(16,), slots=(2,)) -> list[MetaTrainConfig]:
    """``base`` with every combination of estimator kind, number of estimators and slots per estimator."""
    return [dataclasses.replace(base, estimator=e, num_groups=int(g), tasks_per_group=int(n))
            for e in estimators for g in groups for n in slots]


def run_grid(base: MetaTrainConfig, thetas: dict, specs, *, estimators=("pes",), groups=(16,), slots=(2,),
             k: int = 4, burn_in: int = 2, echo=None) -> list[dict]:
    """:func:`gradient_quality` of every θ in ``thetas`` (name → θ) × every config of :func:`grid_configs`; one
    row per pair (``theta`` names it). ``echo(row)`` is called as each row is done."""
    rows = []
    for name, theta in thetas.items():
        for config in grid_configs(base, estimators, groups, slots):
            row = {"theta": name, **gradient_quality(config, theta, specs, k=k, burn_in=burn_in)}
            rows.append(row)
            if echo is not None:
                echo(row)
    return rows


def format_row(row: dict, header: bool = False) -> str:
    """One line of the diagnostic's table (or its header)."""
    blocks = list(row["blocks"])
    if header:
        return (f"{'theta':<10} {'estimator':<9} {'est×slots':>9} {'tasks':>5} {'cosine':>7} {'snr':>8} "
                + " ".join(f"{'snr ' + b:>12}" for b in blocks) + f" {'s/estimate':>10} {'inner steps':>11}")
    st = row["settings"]
    return (f"{row['theta']:<10} {st['estimator']:<9} {st['num_groups']:>4}×{st['tasks_per_group']:<4} "
            f"{row['tasks']:>5} {row['cosine']:>7.3f} {row['snr']:>8.4f} "
            + " ".join(f"{row['blocks'][b]['snr']:>12.4f}" for b in blocks)
            + f" {row['seconds']:>10.2f} {row['inner_steps']:>11}")
