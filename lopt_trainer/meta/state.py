"""What evolves during a run (:class:`TrainerState`): made fresh, restored from a checkpoint, saved.

θ starts from ``lopt.init(PRNGKey(seed))``, the optimizer's hand-set θ (``theta_init`` "handset", or "auto" when
it has one), or a warm start from a θ file or run. Restoring rebuilds the templates of every state from the
optimizer and the sampler state, so a checkpoint holds plain arrays only (:mod:`lopt_trainer.common.checkpoint`).
"""

from __future__ import annotations

import dataclasses

import jax

from lopt_trainer.common import checkpoint as ckpt
from lopt_trainer.meta.config import InitSettings
from lopt_trainer.meta.task_sampler import SamplerState
from lopt_trainer.meta.work import WorkerContext
from lopt_trainer.theta.load import warm_start_theta


@dataclasses.dataclass
class TrainerState:
    """Everything that evolves: step, θ, outer-optimizer state, estimator states, sampler state."""

    step: int
    theta: object
    outer_state: object
    estimators: list
    sampler: SamplerState


def initial_state(ctx: WorkerContext, init: InitSettings, outer) -> TrainerState:
    """θ from ``lopt.init(PRNGKey(seed))`` (``lopt.init_handset`` when ``theta_init`` is "handset", or "auto" and
    the optimizer has one; or the θ of ``init.init_theta``), a fresh outer state, no estimators yet.
    ``ValueError`` when "handset" is asked of an optimizer without one.

    Both inits are jitted: one compile each instead of one per eager op (about 1 s less at start, same bits).
    """
    if init.theta_init == "handset" and ctx.lopt.init_handset is None:
        raise ValueError(f"learned optimizer {ctx.lopt.name!r} has no hand-set initialisation (theta_init='handset')")
    handset = init.theta_init != "random" and ctx.lopt.init_handset is not None
    theta = jax.jit(ctx.lopt.init_handset if handset else ctx.lopt.init)(jax.random.PRNGKey(init.seed))
    if init.init_theta:
        theta = warm_start_theta(theta, init.init_theta)
    return TrainerState(0, theta, jax.jit(outer.init)(theta), [], SamplerState())


def restore_state(ctx: WorkerContext, seed: int, outer, raw) -> TrainerState:
    """A :class:`TrainerState` from a raw checkpoint payload (templates rebuilt from the optimizer, ``seed`` and
    the stored sampler state)."""
    theta0 = ctx.lopt.init(jax.random.PRNGKey(seed))
    theta = ckpt.restore_tree(theta0, raw["theta"])
    outer_state = ckpt.restore_tree(outer.init(theta0), raw["outer_state"])
    sampler = SamplerState.from_json(raw["sampler"])
    ests = [ckpt.restore_tree(ctx.template(theta0, anchor, len(ids)), raw["estimators"][str(i)])
            for i, (anchor, ids) in enumerate(zip(sampler.anchors, sampler.slot_tasks))]
    return TrainerState(int(raw["step"]), theta, outer_state, ests, sampler)


def restore_portable(ctx: WorkerContext, seed: int, outer, raw) -> TrainerState:
    """A :class:`TrainerState` from a portable state's payload (``PortableState.as_checkpoint()``, see
    :mod:`lopt_trainer.meta.portable`): step, θ, outer state and sampler state restored exactly; every
    estimator gets a fresh state (``ctx.template``, as a newly drawn group does) with all its slots marked ended,
    so each slot starts a new problem of its group at the next step (the caller warns that it does)."""
    theta0 = ctx.lopt.init(jax.random.PRNGKey(seed))
    theta = ckpt.restore_tree(theta0, raw["theta"])
    outer_state = ckpt.restore_tree(outer.init(theta0), raw["outer_state"])
    sampler = SamplerState.from_json(raw["sampler"])
    sampler.done = [[True] * len(ids) for ids in sampler.slot_tasks]
    ests = [ctx.template(theta, anchor, len(ids)) for anchor, ids in zip(sampler.anchors, sampler.slot_tasks)]
    return TrainerState(int(raw["step"]), theta, outer_state, ests, sampler)


def save_state(run_dir, state: TrainerState, config_json: str, tasks_digest: str, tasks_count: int):
    """Checkpoint ``state`` into ``run_dir`` with the run's config and training-task digest (see
    :func:`lopt_trainer.common.checkpoint.save_checkpoint`); returns the path."""
    return ckpt.save_checkpoint(run_dir, step=state.step, theta=state.theta, outer_state=state.outer_state,
                                estimators=state.estimators, sampler_json=state.sampler.to_json(),
                                config_json=config_json, tasks_digest=tasks_digest, tasks_count=tasks_count)
