"""Planning one outer step: which group, slot tasks, resets and horizons every estimator gets; and foreseeing
the groups that draining estimators will draw in the next steps (:func:`upcoming_draws`), so that their programs
compile in the background before they are needed."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from lopt_trainer.meta.config import PlanSettings
from lopt_trainer.meta.state import TrainerState
from lopt_trainer.meta.task_sampler import rng_for
from lopt_trainer.meta.truncation import initial_offsets
from lopt_trainer.meta.work import Work, WorkerContext


def check_family_draw(plan: PlanSettings, specs) -> None:
    """Raise ``ValueError`` when ``plan.family_draw`` cannot be carried out on the pool ``specs`` (task specs,
    or their family names): a stratified draw needs at least one estimator per family (with fewer,
    :func:`family_for` would draw every family uniformly)."""
    families = sorted({getattr(s, "family", s) for s in specs})
    family_for(plan, families, 0)  # an unknown family_draw is named
    if plan.family_draw == "stratified" and plan.num_groups < len(families):
        raise ValueError(f"family_draw 'stratified' needs num_groups ≥ the number of families in the pool "
                         f"({len(families)}: {', '.join(families)}), got num_groups {plan.num_groups}; raise "
                         f"num_groups (--set num_groups=N) or draw uniformly (--set family_draw='\"uniform\"')")


def family_for(plan: PlanSettings, families: Sequence[str], e: int) -> str | None:
    """The family estimator ``e`` must draw its group from, or None for a uniform draw.

    ``family_draw="uniform"``: None. ``"stratified"`` over ``F`` (sorted) ``families``: ``families[e mod F]`` for
    the first ``F·⌊num_groups/F⌋`` estimators, None for the rest, so that every outer step averages over every
    family at least once (with 16 estimators and 12 families: estimators 0–11 hold one family each for the whole
    run, 12–15 draw uniformly). The spec within the family is still drawn at each redraw.
    """
    if plan.family_draw == "uniform":
        return None
    if plan.family_draw != "stratified":
        raise ValueError(f"family_draw must be 'uniform' or 'stratified', got {plan.family_draw!r}")
    whole = len(families) * (plan.num_groups // len(families))
    return families[e % len(families)] if e < whole else None


def plan_step(ctx: WorkerContext, plan: PlanSettings, state: TrainerState) -> list[Work]:
    """Decide every estimator's group, slot tasks, resets and horizons for ``state.step`` (updates the sampler
    state and, for newly drawn groups, the estimator states).

    A slot whose problem ended gets a fresh task of its estimator's group (and a fresh init and horizon). Once an
    estimator has held its group for ``resample_every`` outer steps it *drains*: ended slots stay idle instead of
    starting new problems, and when all of its slots have ended it draws a new group. So a redraw never cuts a
    running problem short, and the long horizons stay in the objective. (Estimators drain at different moments,
    which also spreads the compiles of new groups over the run.)
    """
    step, n = state.step, plan.tasks_per_group
    s = state.sampler
    if len(s.groups) != plan.num_groups:  # a fresh run, or another number of estimators: start over
        s.groups, s.anchors, s.slot_tasks, s.done = [], [], [], []
        s.drawn = []
        state.estimators = []
    if len(s.drawn) != len(s.groups):  # a checkpoint of an older version: its groups count as drawn at 0
        s.drawn = [0] * len(s.groups)
    works = []
    for e in range(plan.num_groups):
        new = e >= len(s.groups)
        due = new or (plan.resample_every > 0 and step - s.drawn[e] >= plan.resample_every)
        drawn_now = new or (due and all(s.done[e]))
        if drawn_now:
            _draw_group(ctx, plan, state, e, new)
        draining = due and not drawn_now
        reset = np.asarray(s.done[e], bool) & (not draining)
        slot_rng = rng_for(plan.seed, step, "slot", e)
        for i in np.flatnonzero(reset):
            s.slot_tasks[e][i] = ctx.sampler.choose_task(slot_rng, s.groups[e], s.anchors[e], ctx.splits)
        h_rng = rng_for(plan.seed, step, "horizon", e)
        horizons = plan.horizons.sample(h_rng, n, step)
        if drawn_now and plan.random_offsets:
            horizons = initial_offsets(h_rng, horizons)
        works.append(Work(e, step, s.groups[e], s.anchors[e], list(s.slot_tasks[e]), reset, horizons))
    return works


def _draw_group(ctx: WorkerContext, plan: PlanSettings, state: TrainerState, e: int, new: bool) -> None:
    """Give estimator ``e`` a newly drawn group (all slots marked ended, so each gets a task) and a fresh state."""
    s = state.sampler
    family = family_for(plan, ctx.sampler.families, e)
    group, anchor = ctx.sampler.choose_group(rng_for(plan.seed, state.step, "group", e), family)
    if new:
        for column in (s.groups, s.anchors, s.slot_tasks, s.done, s.drawn, state.estimators):
            column.append(None)
    s.groups[e], s.anchors[e], s.drawn[e] = group, anchor, state.step
    s.slot_tasks[e], s.done[e] = [anchor] * plan.tasks_per_group, [True] * plan.tasks_per_group
    state.estimators[e] = ctx.template(state.theta, anchor, plan.tasks_per_group)


def upcoming_draws(ctx: WorkerContext, plan: PlanSettings, state: TrainerState, lookahead: int) -> list[Work]:
    """The works of the groups that estimators will newly draw within the next ``lookahead`` outer steps (from
    ``state.step`` on), as :func:`plan_step` will plan them.

    Only a *draining* estimator (one that has held its group for ``resample_every`` steps) is foreseen: its live
    slots will not restart, so it draws at the step when its slowest slot reaches its horizon,
    ``ceil((horizon − step) / truncation)`` truncations from now, and that step's seeded draw gives the group,
    anchor and slot tasks exactly. A problem that diverges ends sooner than foreseen (its group is then drawn at
    another step, and the foreseen programs go unused). The works' ``horizons`` are placeholders (only their shape
    matters for compiling).
    """
    if plan.resample_every <= 0 or len(state.sampler.groups) != plan.num_groups or lookahead <= 0:
        return []
    s, t, n = state.sampler, state.step, plan.tasks_per_group
    truncation = ctx.settings.unroll.truncation
    out = []
    for e in range(plan.num_groups):
        if t - s.drawn[e] < plan.resample_every or state.estimators[e] is None:
            continue
        particles = state.estimators[e].particles
        steps, horizons = np.asarray(particles.step)[:, 0], np.asarray(particles.horizon)[:, 0]
        left = [0 if done else max(0, math.ceil((int(h) - int(k)) / truncation))
                for done, h, k in zip(s.done[e], horizons, steps)]
        at = t + max(left, default=0)
        if at - t > lookahead:
            continue
        group, anchor = ctx.sampler.choose_group(rng_for(plan.seed, at, "group", e),
                                                 family_for(plan, ctx.sampler.families, e))
        slot_rng = rng_for(plan.seed, at, "slot", e)
        tasks = [ctx.sampler.choose_task(slot_rng, group, anchor, ctx.splits) for _ in range(n)]
        out.append(Work(e, at, group, anchor, tasks, np.ones(n, bool), np.ones(n, np.int32)))
    return out
