"""One outer step: plan the estimators' work, compute their meta-gradients (in process or on a Ray pool),
combine them and update θ with the outer optimizer; returns the step's metrics record."""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lopt_trainer.common.program_cache import ProgramCache
from lopt_trainer.errors import WorkersFailedError
from lopt_trainer.meta.config import OuterSettings, PlanSettings
from lopt_trainer.meta.plan import plan_step, upcoming_draws
from lopt_trainer.meta.state import TrainerState
from lopt_trainer.meta.work import WorkerContext, compute_work, prefetch_work, work_ready
from lopt_trainer.optimizer import hierarchical
from lopt_trainer.optimizer.optax_api import optax_lopt
from lopt_trainer.theta.load import warm_start_theta


def build_outer_optimizer(outer: OuterSettings) -> optax.GradientTransformation:
    """The outer optimizer: Adam or SGD (with global-norm clipping when ``clip > 0``), or ``lopt:PATH`` — a
    trained hierarchical θ (any name :func:`~lopt_trainer.theta.load.load_theta` takes) used through its optax
    drop-in. Element-wise clipping (``clip_value``) comes first, then global-norm clipping, then the learning rate
    (with a linear warm-up over ``warmup`` steps). With ``parts``, only those parts of θ are updated
    (``optax.masked``). ``ValueError`` for another name."""
    tx = _base_outer_optimizer(outer)
    if outer.parts is None:
        return tx
    # Only the trained parts of θ (``train_parts``): the others get no update, whatever the optimizer would make
    # of their zero gradient (a learned outer optimizer would still move them).
    return optax.masked(tx, functools.partial(_part_tree, tuple(outer.parts)))


def _part_tree(parts: tuple, theta):
    """θ's tree with True on the leaves of the named top-level parts."""
    return {k: jax.tree_util.tree_map(lambda _: k in parts, v) for k, v in theta.items()}


def _base_outer_optimizer(outer: OuterSettings) -> optax.GradientTransformation:
    name = outer.name
    if name.startswith("lopt:"):
        return optax_lopt(warm_start_theta(jax.eval_shape(hierarchical.init, jax.random.PRNGKey(0)), name[5:]))
    lr = outer.lr
    if outer.warmup > 0:
        lr = optax.linear_schedule(0.0, outer.lr, int(outer.warmup))
    if name == "adam":
        base = optax.adam(lr)
    elif name == "sgd":
        base = optax.sgd(lr)
    else:
        raise ValueError(f"unknown outer optimizer {name!r}; use adam, sgd or lopt:PATH")
    chain = []
    if outer.clip_value > 0:  # the paper: every meta-gradient entry clipped, before Adam
        chain.append(optax.clip(outer.clip_value))
    if outer.clip > 0:
        chain.append(optax.clip_by_global_norm(outer.clip))
    return optax.chain(*chain, base) if chain else base


@functools.lru_cache(maxsize=None)
def _outer_update_fn(tx):
    """One jitted function for everything after the estimators: combine their gradients (with the weights of
    :func:`combine_estimates`), update θ, and the norms the metrics report: of the combined gradient, of θ, and of every estimator's
    weighted share (no eager op, so no per-op compile on a cold start)."""
    tx = optax.with_extra_args_support(tx)

    def update(theta, opt_state, grads, weights, loss):
        grad = jax.tree_util.tree_map(lambda *g: sum(w * x for w, x in zip(weights, g)), *grads)
        updates, opt_state = tx.update(grad, opt_state, theta, value=loss)
        theta = optax.apply_updates(theta, updates)
        parts = jnp.stack([w * optax.global_norm(g) for w, g in zip(weights, grads)])
        return theta, opt_state, optax.global_norm(grad), optax.global_norm(theta), parts

    return jax.jit(update)


_OUTER_PROGRAMS = ProgramCache(4)
"""The compiled outer update: prefetched at the start of a step, so on the first one its compile overlaps the
estimators'."""


def combine_estimates(results, combine: str = "mean"):
    """``(gradients, their weights (float32), weighted mean meta-loss)`` of the estimators that answered.

    Each estimator's gradient and loss are means over its slots that trained, so it weighs by that count (a
    draining estimator with one live slot counts as one slot). ``combine="unit"`` combines the estimators' unit
    directions ``g_e / ‖g_e‖`` with the slot weights, times the slot-weighted mean norm ``Σ_e w_e ‖g_e‖``: every
    estimator — one task group, of one family — sets the direction by its slot count alone, not by the size of its
    gradients, while the combined gradient keeps the scale of ``"mean"`` (an estimator with a zero gradient adds
    nothing). The meta-loss keeps the slot weights. ``ValueError`` for another ``combine``."""
    if combine not in GRAD_COMBINE:
        raise ValueError(f"unknown grad_combine {combine!r}; use one of {GRAD_COMBINE}")
    grads, weights, losses = [], [], []
    for res in results:
        if res is None:
            continue
        grads.append(res[0])
        weights.append(int(res[2]["trained"]))
        losses.append(float(res[2]["meta_loss"]))
    if not sum(weights):
        weights = [1] * len(weights)
    total = float(sum(weights))
    loss = sum(wt / total * l for wt, l in zip(weights, losses))
    mix = np.asarray(weights, np.float64) / total
    if combine == "unit":
        norms = np.asarray([np.sqrt(sum(float(np.sum(np.square(np.asarray(x, np.float64))))
                                        for x in jax.tree_util.tree_leaves(g))) for g in grads])
        scale = float(mix @ norms)  # the slot-weighted mean norm: the step keeps the size "mean" would give
        mix = np.where(norms > 0, mix * scale / np.where(norms > 0, norms, 1.0), 0.0)
    return grads, mix.astype(np.float32), loss


GRAD_COMBINE = ("mean", "unit")
"""How an outer step combines its estimators' meta-gradients (:func:`combine_estimates`)."""


def family_shares(families: list[str], norms) -> dict[str, float]:
    """Each family's share of the meta-gradient: ``Σ_{e ∈ family} ‖w_e g_e‖² / Σ_e ‖w_e g_e‖²`` over the
    estimators ``e`` (``families[e]`` and the weighted gradient norms ``norms[e]``); sums to 1 (empty when every
    norm is 0)."""
    sq = np.square(np.asarray(norms, np.float64))
    total = float(sq.sum())
    if not total > 0:
        return {}
    out: dict[str, float] = {}
    for fam, v in zip(families, sq):
        out[fam] = out.get(fam, 0.0) + float(v) / total
    return dict(sorted(out.items()))


WORKER_RETRIES = 2
"""How many times an outer step whose every worker failed runs again on the replaced workers."""


def train_step(ctx: WorkerContext, plan: PlanSettings, outer, state: TrainerState, pool=None,
               on_work=None, end_step: int | None = None) -> dict:
    """One outer step (in place on ``state``) with the outer optimizer ``outer``; the estimators' work runs in
    this process, or on ``pool`` (an object with ``compute(theta, [(work, state), ...])``). Returns the metrics
    record. When every estimator's worker failed, the same work runs again on the pool's fresh workers, up to
    :data:`WORKER_RETRIES` times, then :class:`~lopt_trainer.errors.WorkersFailedError`. ``on_work(i, n, work)``:
    called before the ``i``-th of ``n`` estimators runs in process (a progress display: the first work of a group
    compiles its program). A step in which no slot counted a meta-loss step (all problems before ``meta_loss_from``) advances the
    problems but not θ nor the outer optimizer, and records ``meta_loss`` as None. ``end_step``: the step the run
    stops before, when known; no program is compiled ahead for a group drawn at or after it."""
    t0 = time.perf_counter()
    works = plan_step(ctx, plan, state)
    _prefetch_outer_update(outer, state, len(works))
    results = _run_works(ctx, state, works, pool, on_work)
    stats = [jax.device_get(r[2]) if r is not None else None for r in results]
    grads, weights, meta_loss = combine_estimates(results, plan.grad_combine)
    trained = any(int(st["trained"]) for st in stats if st is not None)
    theta, outer_state, gnorm, tnorm, parts = _outer_update(outer, state, grads, weights, meta_loss, trained)
    meta_loss = meta_loss if trained else None
    shares = family_shares([ctx.sampler.family_of(w.anchor) for w, r in zip(works, results) if r is not None],
                           np.asarray(parts))
    for w, r, st in zip(works, results, stats):
        if r is not None:
            state.estimators[w.index] = r[1]
            state.sampler.done[w.index] = [bool(x) for x in st["done"]]
    state.theta, state.outer_state = theta, outer_state
    record = _step_record(ctx, state, works, results, stats, time.perf_counter() - t0)
    record.update(meta_loss=meta_loss, grad_norm=float(gnorm), theta_norm=float(tnorm), family_grad_share=shares)
    state.step += 1
    if pool is None:
        compile_ahead(ctx, plan, state, end_step)
    return record


def _run_works(ctx: WorkerContext, state: TrainerState, works, pool, on_work) -> list:
    """Every work's ``(grad, new state, stats, compile seconds)`` or None (its worker failed): in this process, the
    compiled ones first (:func:`compiled_first`), or on ``pool``, run again on its fresh workers when all failed.

    Raises:
      WorkersFailedError: every worker failed, :data:`WORKER_RETRIES` more times too.
    """
    if pool is None:
        results = [None] * len(works)
        for k, i in enumerate(compiled_first(ctx, state, works)):
            if on_work is not None:
                on_work(k, len(works), works[i])
            results[i] = compute_work(ctx, state.theta, state.estimators[works[i].index], works[i])
        return results
    items = [(w, state.estimators[w.index]) for w in works]
    results = pool.compute(state.theta, items)
    for _ in range(WORKER_RETRIES):  # the pool replaced the dead workers: the same work again, on them
        if any(r is not None for r in results):
            break
        results = pool.compute(state.theta, items)
    if not any(r is not None for r in results):
        raise WorkersFailedError(f"step {state.step}: every gradient worker failed, and again on fresh workers "
                                 f"{WORKER_RETRIES} times; the run continues from its last checkpoint with --resume "
                                 "(check the workers' memory and logs, or run with --workers 0)")
    return results


def _prefetch_outer_update(outer, state: TrainerState, n_works: int) -> None:
    """Queue the outer update's compile (on the first step it overlaps the estimators')."""
    _OUTER_PROGRAMS.prefetch(("outer", outer), lambda: _outer_update_fn(outer), (
        state.theta, state.outer_state, [state.theta] * n_works, jax.ShapeDtypeStruct((n_works,), np.float32),
        jax.ShapeDtypeStruct((), np.float32)))


def _outer_update(outer, state: TrainerState, grads, weights, meta_loss: float, trained: bool):
    """``(θ, outer state, ‖combined gradient‖, ‖θ‖, each estimator's weighted gradient norm)`` after the step.

    A step in which no slot counted a meta-loss step (every problem still before ``meta_loss_from``) has nothing
    to learn from: θ and the outer optimizer (its step count, its warm-up) stay as they are.
    """
    if not trained:
        return state.theta, state.outer_state, 0.0, optax.global_norm(state.theta), np.zeros(len(grads), np.float32)
    if jax.local_device_count() > 1:  # gradients of slots split over devices: to the host, θ's device takes them
        grads = jax.device_get(grads)
    args = (state.theta, state.outer_state, grads, weights, np.float32(meta_loss))
    update, _ = _OUTER_PROGRAMS.get(("outer", outer), lambda: _outer_update_fn(outer), args)
    return update(*args)


def compile_ahead(ctx: WorkerContext, plan: PlanSettings, state: TrainerState, end_step: int | None) -> None:
    """Queue the compiles of the groups foreseen to be drawn within ``plan.prefetch_steps`` steps (and before
    ``end_step`` when known) on the background compile thread (:func:`~lopt_trainer.meta.plan.upcoming_draws`)."""
    lookahead = plan.prefetch_steps if end_step is None else min(plan.prefetch_steps, end_step - 1 - state.step)
    if lookahead > 0:
        for w in upcoming_draws(ctx, plan, state, lookahead):
            prefetch_work(ctx, state.theta, None, w)


def compiled_first(ctx: WorkerContext, state: TrainerState, works) -> list[int]:
    """The order in which to run a step's works in this process: those whose programs are compiled first (in
    index order), then the others, whose compiles are queued now on the background thread (a foreseen draw's may
    already be under way), so they compile while the first ones run, and two at a time
    (:meth:`~lopt_trainer.common.program_cache.ProgramCache.prefetch`). The results do not depend on the order:
    every work has its own keys, and they are combined in index order."""
    ready, waiting = [], []
    for i, w in enumerate(works):
        if work_ready(ctx, state.theta, state.estimators[w.index], w):
            ready.append(i)
        else:
            prefetch_work(ctx, state.theta, state.estimators[w.index], w)
            waiting.append(i)
    return ready + waiting


def _step_record(ctx: WorkerContext, state: TrainerState, works, results, stats, wall: float) -> dict:
    """The metrics record of a step (see :mod:`lopt_trainer.meta.metrics`), without the loss and norms."""
    ok = [r for r in results if r is not None]
    live = [st for st in stats if st is not None]
    compile_s = sum(r[3] for r in ok)
    inner = sum(int(st["active_steps"]) for st in live)
    return {
        "kind": "step", "step": state.step, "inner_steps": inner,
        "inner_steps_per_s": inner / max(wall - compile_s, 1e-9), "step_seconds": wall, "compile_seconds": compile_s,
        "clipped_losses": int(sum(int(s["clipped"]) for s in live)),
        "nan_grads": int(sum(int(s["nan_grads"]) for s in live)),
        "resets": int(sum(int(np.sum(w.reset)) for w in works)),
        "groups": sorted(set(w.group for w in works)),
        "tasks": sorted(set(t for w in works for t in w.task_ids)),
        "estimators_ok": len(ok), "estimators": len(works),
        "families": sorted(set(ctx.sampler.family_of(t) for w in works for t in w.task_ids)),
    }
