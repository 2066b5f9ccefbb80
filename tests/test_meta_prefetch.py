"""Compiling ahead: foreseen group draws, compiled-first run order, and the program cache taking back a queued
compile. None of it may change a number."""

from __future__ import annotations

import contextlib
import threading

import jax
import jax.numpy as jnp
import numpy as np

from lopt_trainer.common.program_cache import ProgramCache
from lopt_trainer.meta import MetaTrainConfig
from lopt_trainer.meta import outer as outer_mod
from lopt_trainer.meta.outer import build_outer_optimizer, train_step
from lopt_trainer.meta.plan import upcoming_draws
from lopt_trainer.meta.state import initial_state
from lopt_trainer.meta.work import make_context
from tests.meta_helpers import quadratic_specs


def _setup(**kw):
    base = dict(lopt="tests.meta_helpers:tiny_lopt", num_groups=3, tasks_per_group=2, truncation=4, horizon_min=6,
                horizon_max=20, resample_every=2, steps=100, eval_every=0, seed=3)
    base.update(kw)
    s = MetaTrainConfig(**base).split()
    ctx = make_context(s.worker, quadratic_specs(12))
    outer = build_outer_optimizer(s.outer)
    return s, ctx, outer, initial_state(ctx, s.init, outer)


def _bytes(tree) -> list[bytes]:
    return [np.asarray(x).tobytes() for x in jax.tree_util.tree_leaves(jax.device_get(tree))]


def test_upcoming_draws_foresee_the_draws_exactly():
    s, ctx, outer, state = _setup()
    foreseen, checked = {}, 0
    for _ in range(16):
        train_step(ctx, s.plan, outer, state)
        drawn_now = state.step - 1
        sampler = state.sampler
        for e in range(s.plan.num_groups):
            if sampler.drawn[e] == drawn_now and (e, drawn_now) in foreseen:
                w = foreseen[(e, drawn_now)]
                assert (w.group, w.anchor, w.task_ids) == (sampler.groups[e], sampler.anchors[e],
                                                           list(sampler.slot_tasks[e]))
                checked += 1
        for w in upcoming_draws(ctx, s.plan, state, lookahead=100):
            assert w.step >= state.step
            foreseen[(w.index, w.step)] = w
    assert checked >= 4  # several redraws were foreseen, every one exactly


def test_upcoming_draws_foresee_stratified_draws_exactly():
    import taskgen
    from lopt_trainer.common.task_pool import filter_specs

    twod = filter_specs(taskgen.load_specs(None), {"split": ["meta_train"], "family": ["twod"]})[:6]
    s = MetaTrainConfig(lopt="tests.meta_helpers:tiny_lopt", num_groups=3, tasks_per_group=2, truncation=4,
                        horizon_min=6, horizon_max=20, resample_every=2, steps=100, eval_every=0, seed=3,
                        family_draw="stratified").split()
    ctx = make_context(s.worker, quadratic_specs(6) + twod)
    outer = build_outer_optimizer(s.outer)
    state = initial_state(ctx, s.init, outer)
    foreseen, checked = {}, 0
    for _ in range(16):
        train_step(ctx, s.plan, outer, state)
        sampler = state.sampler
        assert [ctx.sampler.family_of(a) for a in sampler.anchors[:2]] == ["quadratic", "twod"]
        for e in range(3):
            w = foreseen.get((e, state.step - 1))
            if sampler.drawn[e] == state.step - 1 and w is not None:
                assert (w.group, w.anchor, w.task_ids) == (sampler.groups[e], sampler.anchors[e],
                                                           list(sampler.slot_tasks[e]))
                checked += e < 2  # a stratified estimator's draw, foreseen with its family
        for w in upcoming_draws(ctx, s.plan, state, lookahead=100):
            foreseen[(w.index, w.step)] = w
    assert checked >= 4


def test_upcoming_draws_only_for_draining_estimators_within_lookahead():
    s, ctx, outer, state = _setup(resample_every=1000)
    train_step(ctx, s.plan, outer, state)
    assert upcoming_draws(ctx, s.plan, state, lookahead=100) == []  # nobody drains yet
    s2, ctx2, outer2, state2 = _setup()
    for _ in range(3):
        train_step(ctx2, s2.plan, outer2, state2)
    far = upcoming_draws(ctx2, s2.plan, state2, lookahead=100)
    near = upcoming_draws(ctx2, s2.plan, state2, lookahead=0)
    assert near == [] and all(w.step >= state2.step for w in far)


def test_nothing_is_compiled_ahead_for_steps_the_run_will_not_reach(monkeypatch):
    """With the run's last step known, a group foreseen to be drawn at or after it queues no compile (a run that
    ends would otherwise wait for a program nobody uses); without it, the look-ahead is the setting's."""
    queued = []
    monkeypatch.setattr(outer_mod, "prefetch_work", lambda ctx, theta, st, w: queued.append(w.step))
    s, ctx, outer, state = _setup(prefetch_steps=8)
    end = 9
    while state.step < end:
        train_step(ctx, s.plan, outer, state, end_step=end)
    assert queued and max(queued) < end
    queued.clear()
    s, ctx, outer, state = _setup(prefetch_steps=8)
    while state.step < end:
        train_step(ctx, s.plan, outer, state)
    assert max(queued) >= end  # what the cap held back


def test_run_order_and_prefetch_change_no_number(monkeypatch):
    """The same steps with the works run in reverse order and without look-ahead give the same bytes."""
    s, ctx, outer, a = _setup()
    records_a = [train_step(ctx, s.plan, outer, a) for _ in range(6)]

    s_b, ctx_b, outer_b, b = _setup(prefetch_steps=0)
    original = outer_mod.compiled_first
    monkeypatch.setattr(outer_mod, "compiled_first", lambda *args: original(*args)[::-1])
    records_b = [train_step(ctx_b, s_b.plan, outer_b, b) for _ in range(6)]

    assert _bytes(a.theta) == _bytes(b.theta)
    assert _bytes(a.outer_state) == _bytes(b.outer_state)
    assert [r["meta_loss"] for r in records_a] == [r["meta_loss"] for r in records_b]
    assert [r["tasks"] for r in records_a] == [r["tasks"] for r in records_b]


def test_compiled_first_puts_compiled_works_first():
    s, ctx, outer, state = _setup(num_groups=3)
    train_step(ctx, s.plan, outer, state)  # compiles the three groups' programs
    from lopt_trainer.meta.plan import plan_step
    import dataclasses

    works = plan_step(ctx, s.plan, dataclasses.replace(state, sampler=dataclasses.replace(state.sampler)))
    assert outer_mod.compiled_first(ctx, state, works) == [0, 1, 2]


@contextlib.contextmanager
def _background_busy(cache, x):
    """The background compile thread busy with a slow compile of ``"slow"`` until the block ends; yields an event
    set once that compile has finished."""
    release, started, finished = threading.Event(), threading.Event(), threading.Event()

    def slow_factory():
        started.set()
        release.wait(timeout=60)
        finished.set()
        return jax.jit(lambda x: x + 1)

    cache.prefetch("slow", slow_factory, (x,))
    try:
        assert started.wait(timeout=60)  # the background thread is busy with it
        yield finished
    finally:
        release.set()
    exe, _ = cache.get("slow", slow_factory, (x,))
    np.testing.assert_array_equal(np.asarray(exe(jnp.ones(3))), [2.0, 2.0, 2.0])


def test_get_takes_back_a_queued_compile():
    """A program queued behind a background compile that is still running compiles in the caller."""
    cache, x = ProgramCache(8), jnp.zeros(3)
    with _background_busy(cache, x) as slow_finished:
        cache.prefetch("fast", lambda: jax.jit(lambda x: x * 2), (x,))
        exe, _ = cache.get("fast", lambda: jax.jit(lambda x: x * 2), (x,))
        np.testing.assert_array_equal(np.asarray(exe(jnp.ones(3))), [2.0, 2.0, 2.0])
        assert not slow_finished.is_set()  # it did not wait for the slow compile
        assert cache.lookup("fast", (x,)) is not None


def test_cancel_pending_drops_queued_compiles_a_finished_run_would_wait_for():
    cache, x = ProgramCache(8), jnp.zeros(3)
    with _background_busy(cache, x):
        cache.prefetch("queued", lambda: jax.jit(lambda x: x * 2), (x,))
        assert cache.cancel_pending() == 1  # the running one finishes, the queued one is dropped
    assert cache.lookup("queued", (x,)) is None
    exe, _ = cache.get("queued", lambda: jax.jit(lambda x: x * 2), (x,))  # compiled on demand as before
    np.testing.assert_array_equal(np.asarray(exe(jnp.ones(3))), [2.0, 2.0, 2.0])
