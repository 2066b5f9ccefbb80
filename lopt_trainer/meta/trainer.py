"""The outer loop: plan estimator work, compute meta-gradients (in process or on Ray), update θ, log, checkpoint.

Python use::

    from lopt_trainer.meta import MetaTrainConfig, meta_train
    result = meta_train(MetaTrainConfig(steps=200, filters={"family": ["quadratic"], "split": ["meta_train"]}),
                        "runs/q1")
    result.theta

Every random choice derives from ``config.seed`` and the outer step (PRNG keys via ``fold_in``; host decisions
via :func:`lopt_trainer.meta.task_sampler.rng_for`), so a run resumed from a checkpoint repeats the uninterrupted
run bit for bit. Groups are redrawn every ``resample_every`` outer steps (all slots restart then); between
redraws a slot whose problem ended gets a new task of its group and a new init.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import signal
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lopt_trainer.meta import checkpoint as ckpt
from lopt_trainer.meta.config import MetaTrainConfig
from lopt_trainer.meta.evaluation import evaluate
from lopt_trainer.meta.metrics import append_metrics, truncate_metrics
from lopt_trainer.meta.resume import check_tasks, resolve_resumed_config, task_digest
from lopt_trainer.meta.task_sampler import SamplerState, filter_specs, rng_for
from lopt_trainer.meta.truncation import initial_offsets
from lopt_trainer.meta.work import Work, WorkerContext, compute_work, import_plugins, make_context
from lopt_trainer.program_cache import ProgramCache


@dataclasses.dataclass
class TrainerState:
    """Everything that evolves: step, θ, outer-optimizer state, estimator states, sampler state."""

    step: int
    theta: object
    outer_state: object
    estimators: list
    sampler: SamplerState


@dataclasses.dataclass
class RunResult:
    """What :func:`meta_train` returns: the final state, the run folder and whether it was interrupted."""

    state: TrainerState
    run_dir: Path
    interrupted: bool

    @property
    def theta(self):
        """The meta-parameters at the end."""
        return self.state.theta


# ---------------------------------------------------------------- setup


def build_outer_optimizer(config: MetaTrainConfig) -> optax.GradientTransformation:
    """The outer optimizer of a config: Adam or SGD (with global-norm clipping when ``outer_clip > 0``), or
    ``lopt:PATH`` — a trained hierarchical θ (a checkpoint or reference npz) used through its optax drop-in.
    Element-wise clipping (``outer_clip_value``) comes first, then global-norm clipping, then the learning rate
    (with a linear warm-up over ``outer_warmup`` steps)."""
    name = config.outer_opt
    if name.startswith("lopt:"):
        from lopt_trainer import hierarchical
        from lopt_trainer.optax_api import optax_lopt

        return optax_lopt(warm_start_theta(jax.eval_shape(hierarchical.init, jax.random.PRNGKey(0)), name[5:]))
    lr = config.outer_lr
    if config.outer_warmup > 0:
        lr = optax.linear_schedule(0.0, config.outer_lr, int(config.outer_warmup))
    if name == "adam":
        base = optax.adam(lr)
    elif name == "sgd":
        base = optax.sgd(lr)
    else:
        raise ValueError(f"unknown outer optimizer {name!r}; use adam, sgd or lopt:PATH")
    chain = []
    if config.outer_clip_value > 0:  # the paper: every meta-gradient entry clipped, before Adam
        chain.append(optax.clip(config.outer_clip_value))
    if config.outer_clip > 0:
        chain.append(optax.clip_by_global_norm(config.outer_clip))
    return optax.chain(*chain, base) if chain else base


def load_theta(path):
    """θ from a meta-training run folder / checkpoint file, or a reference ``.npz`` (hierarchical layout).

    Raises ``ThetaFileError`` / ``CheckpointError`` naming the file when it is damaged or an array of θ holds
    NaN or inf; ``FileNotFoundError`` when there is no θ at ``path``.
    """
    from lopt_trainer.theta_check import check_finite

    path = Path(path)
    if path.suffix == ".npz":
        from lopt_trainer.reference_io import load_reference_npz

        return load_reference_npz(path)
    if path.is_dir():
        raw, source = ckpt.load_checkpoint(path), path / ckpt.FILENAME
    else:
        raw, source = ckpt.read_checkpoint(path), path
    if raw is None:
        raise FileNotFoundError(f"no checkpoint in {path}")
    check_finite(raw["theta"], source)
    return jax.tree_util.tree_map(jnp.asarray, raw["theta"])


def load_specs_for(config: MetaTrainConfig):
    """``(train_specs, eval_specs)``: the filtered specs and up to ``eval_tasks`` fixed held-out specs (the
    ``meta_test`` specs that pass the non-split filters; training specs when there are none)."""
    import taskgen

    import_plugins(config.plugins)
    specs = taskgen.load_specs(config.manifest or config.suite)
    train = filter_specs(specs, config.filters, config.max_params, config.max_flops)
    other = {k: v for k, v in config.filters.items() if k != "split"}
    held = filter_specs(specs, {**other, "split": ["meta_test"]}, config.max_params, config.max_flops)
    pool = sorted(held or train, key=lambda s: s.task_id)
    order = rng_for(config.seed, 0, "eval").permutation(len(pool))
    return train, [pool[i] for i in order[:config.eval_tasks]]


def initial_state(ctx: WorkerContext, config: MetaTrainConfig, outer) -> TrainerState:
    """θ from ``lopt.init(PRNGKey(seed))`` (``lopt.init_handset`` when ``theta_init`` is "handset", or "auto" and
    the optimizer has one; or the θ of
    ``config.init_theta``), a fresh outer state, no estimators yet.

    Both inits are jitted: one compile each instead of one per eager op (about 1 s less at start, same bits).
    """
    if config.theta_init == "handset" and ctx.lopt.init_handset is None:
        raise ValueError(f"learned optimizer {ctx.lopt.name!r} has no hand-set initialisation (theta_init='handset')")
    handset = config.theta_init != "random" and ctx.lopt.init_handset is not None
    theta = jax.jit(ctx.lopt.init_handset if handset else ctx.lopt.init)(jax.random.PRNGKey(config.seed))
    if config.init_theta:
        theta = warm_start_theta(theta, config.init_theta)
    return TrainerState(0, theta, jax.jit(outer.init)(theta), [], SamplerState())


def warm_start_theta(template, path):
    """θ loaded from ``path`` (see :func:`load_theta`) in the structure of ``template`` (a fresh θ of the run's
    optimizer, or its ``jax.eval_shape``); ``ThetaFileError`` naming the file and the first array that does not
    match (or holds NaN/inf)."""
    from lopt_trainer.theta_check import check_like

    loaded = load_theta(path)
    check_like(loaded, template, path)
    return jax.tree_util.tree_map(lambda x, t: jnp.asarray(x, t.dtype), loaded, template)


def restore_state(ctx: WorkerContext, config: MetaTrainConfig, outer, raw) -> TrainerState:
    """A :class:`TrainerState` from a raw checkpoint payload (templates rebuilt from config and sampler)."""
    theta0 = ctx.lopt.init(jax.random.PRNGKey(config.seed))
    theta = ckpt.restore_tree(theta0, raw["theta"])
    outer_state = ckpt.restore_tree(outer.init(theta0), raw["outer_state"])
    sampler = SamplerState.from_json(raw["sampler"])
    ests = [ckpt.restore_tree(ctx.template(theta0, anchor, len(ids)), raw["estimators"][str(i)])
            for i, (anchor, ids) in enumerate(zip(sampler.anchors, sampler.slot_tasks))]
    return TrainerState(int(raw["step"]), theta, outer_state, ests, sampler)


# ---------------------------------------------------------------- one outer step


def plan_step(ctx: WorkerContext, config: MetaTrainConfig, state: TrainerState) -> list[Work]:
    """Decide every estimator's group, slot tasks, resets and horizons for ``state.step`` (updates the sampler
    state and, for newly drawn groups, the estimator states).

    A slot whose problem ended gets a fresh task of its estimator's group (and a fresh init and horizon). Once an
    estimator has held its group for ``resample_every`` outer steps it *drains*: ended slots stay idle instead of
    starting new problems, and when all of its slots have ended it draws a new group. So a redraw never cuts a
    running problem short, and the long horizons stay in the objective. (Estimators drain at different moments,
    which also spreads the compiles of new groups over the run.)
    """
    step, n = state.step, config.tasks_per_group
    schedule = config.horizon_schedule()
    s = state.sampler
    restart = len(s.groups) != config.num_groups
    if restart:
        s.groups, s.anchors, s.slot_tasks, s.done = [], [], [], []
        s.drawn = []
        state.estimators = []
    if len(s.drawn) != len(s.groups):  # a checkpoint of an older version: its groups count as drawn at 0
        s.drawn = [0] * len(s.groups)
    works = []
    for e in range(config.num_groups):
        new = e >= len(s.groups)
        due = new or (config.resample_every > 0 and step - s.drawn[e] >= config.resample_every)
        drawn_now = new or (due and all(s.done[e]))
        if drawn_now:
            group, anchor = ctx.sampler.choose_group(rng_for(config.seed, step, "group", e))
            if new:
                s.groups.append(None), s.anchors.append(None), s.slot_tasks.append(None), s.done.append(None)
                s.drawn.append(None)
                state.estimators.append(None)
            s.groups[e], s.anchors[e], s.drawn[e] = group, anchor, step
            s.slot_tasks[e], s.done[e] = [anchor] * n, [True] * n
            state.estimators[e] = ctx.template(state.theta, anchor, n)
        draining = due and not drawn_now
        reset = np.asarray(s.done[e], bool) & (not draining)
        slot_rng = rng_for(config.seed, step, "slot", e)
        for i in np.flatnonzero(reset):
            s.slot_tasks[e][i] = ctx.sampler.choose_task(slot_rng, s.groups[e], s.anchors[e], ctx.splits)
        h_rng = rng_for(config.seed, step, "horizon", e)
        horizons = schedule.sample(h_rng, n, step)
        if drawn_now and config.random_offsets:
            horizons = initial_offsets(h_rng, horizons)
        works.append(Work(e, step, s.groups[e], s.anchors[e], list(s.slot_tasks[e]), reset, horizons))
    return works


@functools.lru_cache(maxsize=None)
def _outer_update_fn(tx):
    """One jitted function for everything after the estimators: combine their gradients (weighted by slot
    counts), update θ, and the norms the metrics report: of the combined gradient, of θ, and of every estimator's
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


def _combine(results, works):
    """``(gradients, their weights (float32), weighted mean meta-loss)`` of the estimators that answered.

    Each estimator's gradient and loss are means over its slots that trained, so it weighs by that count (a
    draining estimator with one live slot counts as one slot)."""
    grads, weights, losses = [], [], []
    for res, w in zip(results, works):
        if res is None:
            continue
        grads.append(res[0])
        weights.append(int(res[2]["trained"]))
        losses.append(float(res[2]["meta_loss"]))
    if not sum(weights):
        weights = [1] * len(weights)
    total = float(sum(weights))
    loss = sum(wt / total * l for wt, l in zip(weights, losses))
    return grads, np.asarray([wt / total for wt in weights], np.float32), loss


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


def train_step(ctx: WorkerContext, config: MetaTrainConfig, outer, state: TrainerState, backend=None) -> dict:
    """One outer step (in place on ``state``); returns the metrics record."""
    t0 = time.perf_counter()
    works = plan_step(ctx, config, state)
    _OUTER_PROGRAMS.prefetch(("outer", outer), lambda: _outer_update_fn(outer), (
        state.theta, state.outer_state, [state.theta] * len(works), jax.ShapeDtypeStruct((len(works),), np.float32),
        jax.ShapeDtypeStruct((), np.float32)))
    if backend is None:
        results = [compute_work(ctx, state.theta, state.estimators[w.index], w) for w in works]
    else:
        results = backend.compute(state.theta, [(w, state.estimators[w.index]) for w in works])
    ok = [r is not None for r in results]
    if not any(ok):
        raise RuntimeError(f"step {state.step}: every gradient worker failed")
    stats = [jax.device_get(r[2]) if r is not None else None for r in results]
    grads, weights, meta_loss = _combine(results, works)
    args = (state.theta, state.outer_state, grads, weights, np.float32(meta_loss))
    update, _ = _OUTER_PROGRAMS.get(("outer", outer), lambda: _outer_update_fn(outer), args)
    theta, outer_state, gnorm, tnorm, parts = update(*args)
    shares = family_shares([ctx.sampler.family_of(w.anchor) for w, r in zip(works, results) if r is not None],
                           np.asarray(parts))
    for w, r, st in zip(works, results, stats):
        if r is not None:
            state.estimators[w.index] = r[1]
            state.sampler.done[w.index] = [bool(x) for x in st["done"]]
    state.theta, state.outer_state = theta, outer_state
    gnorm = float(gnorm)
    wall = time.perf_counter() - t0
    compile_s = sum(r[3] for r in results if r is not None)
    inner = sum(int(st["active_steps"]) for st in stats if st is not None)
    run_s = max(wall - compile_s, 1e-9)
    record = {
        "kind": "step", "step": state.step, "meta_loss": meta_loss, "grad_norm": gnorm,
        "theta_norm": float(tnorm), "inner_steps": inner, "inner_steps_per_s": inner / run_s,
        "step_seconds": wall, "compile_seconds": compile_s,
        "clipped_losses": int(sum(int(s["clipped"]) for s in stats if s is not None)),
        "nan_grads": int(sum(int(s["nan_grads"]) for s in stats if s is not None)),
        "resets": int(sum(int(np.sum(w.reset)) for w in works)),
        "groups": sorted(set(w.group for w in works)),
        "tasks": sorted(set(t for w in works for t in w.task_ids)),
        "estimators_ok": int(sum(ok)), "estimators": len(works),
        "families": sorted(set(ctx.sampler.family_of(t) for w in works for t in w.task_ids)),
        "family_grad_share": shares,
    }
    state.step += 1
    return record


# ---------------------------------------------------------------- the run


class _StopFlag:
    """Set by SIGINT/SIGTERM; the loop checkpoints and stops after the current step."""

    def __init__(self):
        self.signum = None

    def __call__(self, signum, frame):
        del frame
        self.signum = signum


def _install_handlers(flag):
    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old[sig] = signal.signal(sig, flag)
        except ValueError:  # not the main thread
            pass
    return old


def _save(run_dir, state: TrainerState, config: MetaTrainConfig, tasks_digest: str, tasks_count: int):
    ckpt.save_checkpoint(run_dir, step=state.step, theta=state.theta, outer_state=state.outer_state,
                         estimators=state.estimators, sampler_json=state.sampler.to_json(),
                         config_json=config.to_json(), tasks_digest=tasks_digest, tasks_count=tasks_count)


class Panel:
    """The run's quality panel (:mod:`lopt_trainer.evaluation.panel`): scores θ every ``panel_every`` outer steps
    into ``RUN/panel/step_NNNNNN/``, appends a ``{"kind": "panel", ...}`` metrics record, and keeps the best θ so
    far by panel score as ``RUN/best_theta.npz`` (reference layout) with ``RUN/best.json`` (step and figures)."""

    def __init__(self, config: MetaTrainConfig, run_dir: Path, lopt, resumed: bool):
        from lopt_trainer.evaluation.panel import PanelSettings, panel_tasks

        self.settings = PanelSettings.from_dict(config.panel)
        self.tasks = panel_tasks(self.settings)
        self.run_dir = run_dir
        self.hierarchical = getattr(lopt, "name", "") == "hierarchical"
        best = run_dir / "best.json"
        self.best = json.loads(best.read_text()) if resumed and best.is_file() else None

    def evaluate(self, state: TrainerState, progress: bool = False) -> dict:
        """Score ``state.theta``; returns the metrics record (also appended to the run's metrics)."""
        from lopt_trainer.evaluation.panel import evaluate_panel

        t0 = time.perf_counter()
        figures = evaluate_panel(state.theta, self.tasks, self.settings,
                                 self.run_dir / "panel" / f"step_{state.step:06d}", progress=progress)
        record = {"kind": "panel", "step": state.step, **figures, "seconds": time.perf_counter() - t0}
        append_metrics(self.run_dir, record)
        score = figures["score"]
        best = None if self.best is None else self.best.get("score")
        better = score is not None and np.isfinite(score) and (best is None or not np.isfinite(best) or score > best)
        if (better or self.best is None) and self.hierarchical:
            from lopt_trainer.evaluation.records import write_json
            from lopt_trainer.evaluation.runner import theta_digest
            from lopt_trainer.reference_io import save_reference_npz

            # θ first, then the record that names it: a crash between the two leaves the older record, which
            # export_run checks against the file's digest.
            save_reference_npz(jax.device_get(state.theta), self.run_dir / "best_theta.npz")
            self.best = dict(record, theta_digest=theta_digest(state.theta))
            write_json(self.run_dir / "best.json", self.best)
        return record


def meta_train(config: MetaTrainConfig, run_dir, *, resume: bool = False, specs=None, eval_specs=None,
               outer_optimizer: optax.GradientTransformation | None = None, progress: bool = True,
               backend=None, given_keys=None, allow_change: bool = False) -> RunResult:
    """Meta-train θ for ``config.steps`` outer steps into ``run_dir``.

    ``specs``/``eval_specs`` override the spec loading of the config (Python use); ``outer_optimizer`` overrides
    ``config.outer_opt`` (any optax transformation; a resumed run must get the same one). With ``resume`` the run
    continues from ``run_dir/checkpoint.msgpack`` (when present) with the config stored there, except ``steps``,
    ``workers``, ``address`` and ``pin_workers``, which are taken from ``config``; any other setting of
    ``config`` named in ``given_keys`` (None = all) that differs from the stored one raises ``ResumeError``,
    unless ``allow_change`` and it is safe to change (see :mod:`lopt_trainer.meta.resume`); a changed training
    task list raises ``ResumeError`` too. ``backend`` overrides the Ray/in-process choice (an object with
    ``compute(theta, items)`` and ``close()``).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    raw = ckpt.load_checkpoint(run_dir) if resume else None
    if raw is not None:
        stored = MetaTrainConfig.from_dict(json.loads(raw["config"]))
        config = resolve_resumed_config(stored, config, run_dir, given_keys, allow_change)
    if config.compilation_cache != "":
        from taskgen.jax_cache import enable_compilation_cache

        enable_compilation_cache(config.compilation_cache or None)
    from taskgen.specfile import atomic_write_bytes

    atomic_write_bytes(run_dir / "config.json", (config.to_json() + "\n").encode())
    if specs is None:
        specs, default_eval = load_specs_for(config)
        eval_specs = default_eval if eval_specs is None else eval_specs
    if raw is not None:
        check_tasks(raw, specs, run_dir, config.manifest or config.suite or "the default suite")
    digest = task_digest(specs)  # stored with every checkpoint; a resume checks it
    ctx = make_context(config, specs)
    outer = outer_optimizer or build_outer_optimizer(config)
    if raw is not None:
        state = restore_state(ctx, config, outer, raw)
        truncate_metrics(run_dir, state.step)
    else:
        state = initial_state(ctx, config, outer)
        truncate_metrics(run_dir, 0)
    eval_tasks = [ctx.sampler.builder(s) for s in (eval_specs or [])]
    panel = Panel(config, run_dir, ctx.lopt, resumed=raw is not None) if config.panel_every > 0 else None
    if panel is not None and state.step == 0:
        panel.evaluate(state, progress)
    own_backend = backend is None and config.workers > 0
    if own_backend:
        from lopt_trainer.meta.ray_backend import RayBackend

        backend = RayBackend(config, specs, num_workers=config.workers, address=config.address,
                             pin=config.pin_workers)
    flag = _StopFlag()
    old = _install_handlers(flag)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.steps, initial=state.step, desc="meta-train", file=sys.stderr)
    try:
        while state.step < config.steps and flag.signum is None:
            record = train_step(ctx, config, outer, state, backend)
            append_metrics(run_dir, record)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{record['meta_loss']:.3f}", sps=f"{record['inner_steps_per_s']:.0f}")
            if eval_tasks and config.eval_every > 0 and state.step % config.eval_every == 0:
                res = evaluate(state.theta, eval_tasks, ctx.lopt, ctx.settings.unroll, config.eval_steps,
                               config.seed)
                append_metrics(run_dir, {"kind": "eval", "step": state.step - 1, "tasks": res})
            if panel is not None and state.step % config.panel_every == 0:
                panel.evaluate(state, progress)
            if config.checkpoint_every > 0 and state.step % config.checkpoint_every == 0:
                _save(run_dir, state, config, digest, len(specs))
        _save(run_dir, state, config, digest, len(specs))
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if bar is not None:
            bar.close()
        if own_backend:
            backend.close()
    return RunResult(state, run_dir, flag.signum is not None)


def theta_bytes(theta) -> bytes:
    """A canonical byte string of θ (leaves in tree order) for bitwise comparisons."""
    return b"".join(np.asarray(x).tobytes() for x in jax.tree_util.tree_leaves(jax.device_get(theta)))


def is_finite_tree(tree) -> bool:
    """True when every leaf is finite."""
    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree_util.tree_leaves(tree))


__all__ = ["Panel", "RunResult", "TrainerState", "build_outer_optimizer", "family_shares", "initial_state",
           "load_specs_for", "load_theta", "meta_train", "plan_step", "restore_state", "theta_bytes", "train_step",
           "warm_start_theta"]
