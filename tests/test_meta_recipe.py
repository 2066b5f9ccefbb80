"""The meta-training recipe: task grouping, redraws that do not cut problems short, the hand-set θ,
per-task loss scaling, gradient shares by family, and panel baselines computed once."""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lopt_trainer.optimizer import hierarchical as H
from lopt_trainer.meta.config import MetaTrainConfig
from lopt_trainer.optimizer.protocol import LearnedOptimizer
from lopt_trainer.meta.outer import family_shares
from lopt_trainer.meta.plan import plan_step
from lopt_trainer.meta.state import TrainerState
from lopt_trainer.common.task_pool import filter_specs
from lopt_trainer.meta.task_sampler import SamplerState
from lopt_trainer.meta.truncation import TaskFns, UnrollSettings, fresh_problem, unroll
from lopt_trainer.meta.work import make_context
from tests.meta_helpers import tiny_lopt


@pytest.fixture(scope="module")
def mixed_pool():
    import taskgen

    specs = taskgen.load_specs(None)
    return filter_specs(specs, {"split": ["meta_train"], "family": ["quadratic", "twod", "mlp"]},
                        max_params=2000, max_flops=500_000)


def _ctx(config, specs):
    import dataclasses

    ctx = make_context(dataclasses.replace(config, lopt="tests.meta_helpers:tiny_lopt").split().worker, specs)
    assert ctx.lopt is tiny_lopt()
    return ctx


def test_quadratic_and_twod_group_by_static_key(mixed_pool):
    from taskgen import default_registry

    reg = default_registry()
    for family in ("quadratic", "twod"):
        fam = reg.get(family)
        spec = next(s for s in mixed_pool if s.family == family)
        from taskgen import build_task

        assert fam.static_key(spec.config) == build_task(spec).static_key
    ctx = _ctx(MetaTrainConfig(), mixed_pool)
    twod = [k for k in ctx.sampler.groups if k.startswith("twod:")]
    # 2-D problems share compiled code per (problem, start box): few groups, many tasks each
    assert 0 < len(twod) <= 12
    assert sum(len(ctx.sampler.groups[k]) for k in twod) == sum(s.family == "twod" for s in mixed_pool)


def test_an_outer_step_sees_many_distinct_tasks_from_several_families(mixed_pool):
    config = MetaTrainConfig(num_groups=16, tasks_per_group=2, resample_every=300, seed=3)  # the recipe's shape
    ctx = _ctx(config, mixed_pool)
    state = TrainerState(0, tiny_lopt().init(None), None, [], SamplerState())
    works = plan_step(ctx, config.split().plan, state)
    tasks = {t for w in works for t in w.task_ids}
    families = {ctx.sampler.family_of(t) for t in tasks}
    assert len(tasks) >= 16
    assert families == {"quadratic", "twod", "mlp"}
    # a slot that ends gets a fresh task of its group at its reset
    e = next(i for i, w in enumerate(works) if len(ctx.sampler.groups[w.group]) > 20)
    before = list(state.sampler.slot_tasks[e])
    seen = set(before)
    for step in range(1, 6):
        state.step = step
        state.sampler.done[e] = [True] * config.tasks_per_group
        works = plan_step(ctx, config.split().plan, state)
        assert all(works[e].reset)
        seen |= set(works[e].task_ids)
    assert len(seen) > len(before)


def test_redraw_waits_for_running_problems(mixed_pool):
    config = MetaTrainConfig(num_groups=2, tasks_per_group=2, resample_every=2, seed=1)
    ctx = _ctx(config, mixed_pool)
    state = TrainerState(0, tiny_lopt().init(None), None, [], SamplerState())
    plan_step(ctx, config.split().plan, state)
    group0 = list(state.sampler.groups)
    s = state.sampler
    for step in (1, 2, 3, 4):  # slot 0 of each estimator ended, slot 1 still running
        state.step = step
        s.done = [[True, False] for _ in range(2)]
        works = plan_step(ctx, config.split().plan, state)
        assert s.groups == group0  # no redraw while a problem runs ...
        for w in works:
            assert not w.reset[1]  # ... the running problem is never restarted
            assert w.reset[0] == (step < 2)  # after resample_every steps the ended slot waits (drains)
    state.step = 5
    s.done = [[True, True] for _ in range(2)]
    works = plan_step(ctx, config.split().plan, state)
    assert s.drawn == [5, 5]  # every problem ended: now the estimators draw new groups
    assert all(w.reset.all() for w in works)


def test_stratified_draw_holds_every_family_at_every_step_and_uniform_draws_are_unchanged(mixed_pool):
    # 7 estimators over 3 families: 0–5 hold family e mod 3 through every redraw, estimator 6 draws uniformly
    config = MetaTrainConfig(num_groups=7, tasks_per_group=1, resample_every=1, seed=2, family_draw="stratified")
    ctx = _ctx(config, mixed_pool)
    plan = config.split().plan
    assert ctx.sampler.families == ["mlp", "quadratic", "twod"]
    state = TrainerState(0, tiny_lopt().init(None), None, [], SamplerState())
    anchors = collections.defaultdict(set)
    for step in range(6):
        state.step = step
        state.sampler.done = [[True] for _ in state.sampler.done]  # every problem ended: every estimator redraws
        works = plan_step(ctx, plan, state)
        fams = [ctx.sampler.family_of(w.anchor) for w in works]
        assert fams[:6] == ["mlp", "quadratic", "twod"] * 2
        for e in range(6):
            anchors[e].add(works[e].anchor)
    assert len(anchors[0]) > 1 and len(anchors[1]) > 1  # the spec within the family is still redrawn
    # the uniform draw (the default) gives the very groups it gave before the setting existed (computed at 682416a)
    uniform = MetaTrainConfig(num_groups=7, tasks_per_group=1, resample_every=1, seed=2)
    st_u = TrainerState(0, tiny_lopt().init(None), None, [], SamplerState())
    assert [w.anchor for w in plan_step(ctx, uniform.split().plan, st_u)] == [
        "quadratic-9e1349ea23e3", "quadratic-9834b9d82716", "mlp-e222939a2e99", "twod-6ad872d7bf32",
        "mlp-e222939a2e99", "mlp-b1fdc367e280", "mlp-b1fdc367e280"]


def test_stratified_draw_needs_an_estimator_per_family(mixed_pool, tmp_path):
    import dataclasses

    from lopt_trainer.meta.plan import check_family_draw, family_for
    from lopt_trainer.meta.trainer import meta_train

    plan = MetaTrainConfig(num_groups=2, family_draw="stratified").split().plan
    with pytest.raises(ValueError, match=r"needs num_groups ≥ the number of families in the pool \(3: mlp, "
                                         r"quadratic, twod\), got num_groups 2"):
        check_family_draw(plan, ["mlp", "quadratic", "twod"])
    check_family_draw(MetaTrainConfig(num_groups=2).split().plan, ["mlp", "quadratic", "twod"])  # uniform: any
    assert [family_for(plan, ["a", "b"], e) for e in range(3)] == ["a", "b", None]
    with pytest.raises(ValueError, match="family_draw must be one of"):
        MetaTrainConfig.from_dict({"family_draw": "round_robin"})
    with pytest.raises(ValueError, match="family_draw must be 'uniform' or 'stratified', got 'round_robin'"):
        check_family_draw(dataclasses.replace(plan, family_draw="round_robin"), ["a"])  # built without from_dict
    # a run is refused before its folder is touched
    config = MetaTrainConfig(lopt="tests.meta_helpers:tiny_lopt", num_groups=2, family_draw="stratified", steps=1)
    with pytest.raises(ValueError, match="needs num_groups ≥ the number of families"):
        meta_train(config, tmp_path / "run", specs=mixed_pool, progress=False)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
    ctx = _ctx(MetaTrainConfig(), mixed_pool)
    with pytest.raises(KeyError, match="family 'char_lm' has no task in the pool"):
        ctx.sampler.choose_group(np.random.default_rng(0), "char_lm")


def test_handset_theta_is_a_normalised_momentum_rule():
    """With its small random part at zero, the hand-set θ's update is c · step_mult · normalised(m/sqrt(v))."""
    scale = 2.0
    theta = H.init_handset(jax.random.PRNGKey(0), scale=scale, noise=0.0)
    rng = np.random.default_rng(0)
    params = {"a": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
              "b": jnp.asarray(rng.normal(size=(5,)), jnp.float32)}
    state = H.init_state(theta, params)
    m = {k: np.zeros(p.shape) for k, p in params.items()}
    v = {k: np.zeros(p.shape) for k, p in params.items()}
    step = jax.jit(H.update)
    for _ in range(4):
        grads = {k: jnp.asarray(rng.normal(size=p.shape) * 0.01, jnp.float32) for k, p in params.items()}
        updates, state = step(theta, grads, state, params, jnp.float32(1.0))
        for k in params:
            g = np.asarray(grads[k], np.float64)
            m[k] = 0.9 * m[k] + 0.1 * g
            v[k] = 0.9 * v[k] + 0.1 * g * g
            x = m[k] / np.sqrt(v[k] + 1e-6)
            want = -scale * 1e-3 * x / np.sqrt(1e-5 + np.mean(x * x))
            np.testing.assert_allclose(np.asarray(updates[k]), want, rtol=1e-4, atol=1e-9)


def test_handset_theta_noise_reaches_every_block_and_magnitude_stays_zero():
    exact = H.init_handset(jax.random.PRNGKey(0), noise=0.0)
    noisy = H.init_handset(jax.random.PRNGKey(0), noise=0.05)
    assert float(jnp.abs(noisy["lstm"]["w"]).max()) > 0  # the rest of θ has gradient paths
    assert float(jnp.abs(exact["lstm"]["w"]).max()) == 0
    np.testing.assert_array_equal(noisy["mlp"]["w2"][:, 1], 0.0)  # magnitude output 0
    with pytest.raises(ValueError, match="decay 0.7"):
        H.init_handset(jax.random.PRNGKey(0), decay=0.7)


def _sign_lopt():
    def init_state(theta, params, key):
        return jnp.zeros(())

    def update(theta, grads, state, params, loss, key):
        return jax.tree_util.tree_map(lambda g: -theta["lr"] * jnp.sign(g), grads), state

    return LearnedOptimizer("sign", lambda key: {"lr": jnp.float32(0.05)}, init_state, update, None)


def _toy_fns(scale):
    def init(key):
        return {"w": jnp.array([1.0, -2.0, 0.5])}

    def loss(params, batch, key):
        return scale * jnp.sum(jnp.square(params["w"] - batch))

    return TaskFns(init, loss, lambda data, key: data, lambda x: x)


@pytest.mark.parametrize("loss_scale, same", [("initial", True), ("none", False)])
def test_initial_loss_scaling_puts_two_families_on_one_scale(loss_scale, same):
    lopt = _sign_lopt()
    theta = lopt.init(None)
    settings = UnrollSettings(truncation=12, valid_every=0, loss_scale=loss_scale, loss_clip=1e6)
    curves = []
    for scale in (1.0, 300.0):  # two "families" whose losses differ by a factor 300
        fns = _toy_fns(scale)
        data = {"train": jnp.zeros(3)}
        ps = fresh_problem(theta, fns, lopt, jax.random.PRNGKey(0), 100)
        ps, meta, active, _ = unroll(theta, ps, data, jax.random.PRNGKey(1), fns, lopt, settings)
        curves.append(np.asarray(meta))
        assert float(ps.init_loss) == pytest.approx(5.25 * scale)
    if same:
        np.testing.assert_allclose(curves[0], curves[1], rtol=1e-5)
        assert curves[0][0] == pytest.approx(1.0)
    else:
        np.testing.assert_allclose(curves[1], 300.0 * curves[0], rtol=1e-5)


def test_meta_loss_from_counts_only_the_late_steps_and_leaves_training_alone():
    lopt = _sign_lopt()
    theta = lopt.init(None)
    fns, data = _toy_fns(1.0), {"train": jnp.zeros(3)}
    runs = {}
    for start in (0, 5, 30):
        settings = UnrollSettings(truncation=12, valid_every=0, loss_clip=1e6, meta_loss_from=start)
        ps = fresh_problem(theta, fns, lopt, jax.random.PRNGKey(0), 100)
        first = unroll(theta, ps, data, jax.random.PRNGKey(1), fns, lopt, settings)
        second = unroll(theta, first[0], data, jax.random.PRNGKey(2), fns, lopt, settings)
        runs[start] = (first, second)
    (full1, full2), (late1, late2), (none1, _) = runs[0], runs[5], runs[30]
    # Training is the same: equal parameters after 24 steps whatever the meta-loss counts.
    np.testing.assert_array_equal(np.asarray(late2[0].params["w"]), np.asarray(full2[0].params["w"]))
    assert np.asarray(late1[2]).tolist() == [False] * 5 + [True] * 7
    np.testing.assert_array_equal(np.asarray(late1[1])[:5], 0.0)
    np.testing.assert_array_equal(np.asarray(late1[1])[5:], np.asarray(full1[1])[5:])
    assert np.asarray(late2[2]).all()  # the second truncation (steps 12-23) counts whole
    np.testing.assert_array_equal(np.asarray(late2[1]), np.asarray(full2[1]))
    assert not np.asarray(none1[2]).any() and float(np.abs(np.asarray(none1[1])).sum()) == 0.0
    with pytest.raises(ValueError, match="meta_loss_from must be >= 0"):
        UnrollSettings(meta_loss_from=-1)
    with pytest.raises(ValueError, match="meta_loss_from"):
        MetaTrainConfig.from_dict({"meta_loss_from": -3})
    assert MetaTrainConfig.from_dict({"meta_loss_from": 700}).estimator_settings().unroll.meta_loss_from == 700
    with pytest.raises(ValueError, match="meta_loss_from=1000 is not below the longest horizon"):
        MetaTrainConfig.from_dict({"meta_loss_from": 1000, "horizon_max": 1000})


def _estimate(grad, trained, loss):
    return ({"w": np.asarray(grad, np.float32)}, None, {"trained": trained, "meta_loss": loss})


def test_combine_estimates_weighs_by_slots_or_by_unit_directions():
    from lopt_trainer.meta.outer import combine_estimates

    results = [_estimate([3.0, 4.0], 2, 1.0), None, _estimate([0.0, 1.0], 2, 3.0), _estimate([0.0, 0.0], 4, 5.0)]
    grads, w, loss = combine_estimates(results)
    assert w.tolist() == pytest.approx([0.25, 0.25, 0.5]) and loss == pytest.approx(0.25 + 0.75 + 2.5)
    grads, w, loss_unit = combine_estimates(results, "unit")
    assert loss_unit == loss  # the meta-loss keeps the slot weights
    assert w[2] == 0.0  # a zero gradient has no direction to give
    combined = sum(wi * np.asarray(g["w"]) for wi, g in zip(w, grads))
    # the slot-weighted unit directions, at the slot-weighted mean norm (0.25·5 + 0.25·1 + 0.5·0 = 1.5)
    want = 1.5 * (0.25 * np.array([0.6, 0.8]) + 0.25 * np.array([0.0, 1.0]))
    assert combined == pytest.approx(want, rel=1e-6)
    # an almost flat estimator adds its slot share of direction, and cannot shrink the step
    tiny = [_estimate([50.0, 0.0], 1, 0.0), _estimate([0.0, 1e-6], 1, 0.0)]
    grads, w, _ = combine_estimates(tiny, "unit")
    combined = sum(wi * np.asarray(g["w"]) for wi, g in zip(w, grads))
    assert combined == pytest.approx(0.5 * (50 + 1e-6) * np.array([0.5, 0.5]), rel=1e-5)
    with pytest.raises(ValueError, match="grad_combine 'median'"):
        combine_estimates(results, "median")
    with pytest.raises(ValueError, match="grad_combine must be one of"):
        MetaTrainConfig.from_dict({"grad_combine": "median"})
    assert MetaTrainConfig.from_dict({"grad_combine": "unit"}).split().plan.grad_combine == "unit"


def test_family_shares_sum_to_one():
    shares = family_shares(["mlp", "twod", "mlp"], [3.0, 4.0, 0.0])
    assert shares == pytest.approx({"mlp": 9 / 25, "twod": 16 / 25})
    assert family_shares(["mlp"], [0.0]) == {}


def test_recipe_settings_are_validated():
    with pytest.raises(ValueError, match="loss_scale"):
        MetaTrainConfig.from_dict({"loss_scale": "median"})
    with pytest.raises(ValueError, match="theta_init"):
        MetaTrainConfig.from_dict({"theta_init": "zeros"})
    # the default: the hand-set θ where the optimizer has one (panel: +0.41 against the random θ's −2.58)
    assert MetaTrainConfig().theta_init == "auto"
    cfg = MetaTrainConfig.from_dict({"outer_clip_value": 0.1, "outer_warmup": 5, "outer_clip": 0})
    from lopt_trainer.meta.outer import build_outer_optimizer

    tx = build_outer_optimizer(cfg.split().outer)
    params = {"x": jnp.zeros(3)}
    st = tx.init(params)
    upd, st = tx.update({"x": jnp.array([5.0, -0.01, 0.0])}, st, params)
    np.testing.assert_array_equal(np.asarray(upd["x"]), 0.0)  # warm-up starts at lr 0
    for _ in range(5):
        upd, st = tx.update({"x": jnp.array([5.0, -0.01, 0.0])}, st, params)
    assert float(upd["x"][0]) < 0 and float(upd["x"][1]) > 0


def test_pretrain_recipe_is_a_valid_config():
    import json
    from pathlib import Path

    import lopt_trainer

    path = Path(lopt_trainer.__file__).parent / "data" / "pretrain_config.json"
    cfg = MetaTrainConfig.from_dict(json.loads(path.read_text()))
    assert cfg.theta_init == "handset" and cfg.meta_loss == "outer_valid" and cfg.loss_scale == "initial"
    assert cfg.horizon_max >= 3000 and cfg.truncation == 50 and cfg.outer_clip_value == 0.1
    assert cfg.num_groups * cfg.tasks_per_group >= 16


def test_the_recipe_trains_and_scores_on_all_twelve_families():
    """Every family has >= 10 meta_train and >= 3 meta_test specs within its limits, and the panel is the
    yardstick's valid set: 120 tasks, 10 of each family."""
    import taskgen
    from lopt_trainer.evaluation.panel import ALL_FAMILIES, PanelSettings, panel_tasks
    from lopt_trainer.meta.config import preset_dict

    cfg = MetaTrainConfig.from_dict(preset_dict("recipe"))
    specs = taskgen.load_specs(None)
    tasks = cfg.split().tasks
    train = collections.Counter(s.family for s in tasks.filter(specs))
    held = collections.Counter(s.family for s in tasks.held_out(specs))
    assert sorted(cfg.filters["family"]) == list(ALL_FAMILIES) == sorted(train)
    assert {f: (train[f], held[f]) for f in cfg.family_limits} == {
        "char_lm": (12, 4), "mlp_vae": (13, 4), "rnn_text_classification": (29, 5), "word_lm": (16, 6)}
    assert min(train.values()) >= 10 and min(held[f] for f in ALL_FAMILIES) >= 3
    panel = PanelSettings.from_dict(cfg.panel)
    assert panel == PanelSettings(on="valid")
    chosen = panel_tasks(panel, specs)
    assert len(chosen) == 120
    assert collections.Counter(t.spec.family for t in chosen) == {f: 10 for f in ALL_FAMILIES}
    assert all(t.group == "valid" and t.spec.split == "meta_test" for t in chosen)
    assert not {t.task_id for t in chosen} & {s.task_id for s in specs}  # never a task of the suite
    from lopt_trainer.evaluation.task_sets import DEFAULT_LIMITS, FAMILY_LIMITS

    assert cfg.family_limits == FAMILY_LIMITS and (cfg.max_params, cfg.max_flops) == tuple(DEFAULT_LIMITS.values())


def test_panel_baselines_are_computed_once_and_reused(tmp_path, monkeypatch):
    from lopt_trainer.evaluation import backends as runs
    from lopt_trainer.evaluation.records import baseline_cache_path
    from lopt_trainer.evaluation.panel import PanelSettings, evaluate_panel, panel_tasks

    calls = collections.Counter()
    real = runs.compute_unit

    def counting(unit, *a, **k):
        calls[unit.optimizer] += 1
        return real(unit, *a, **k)

    monkeypatch.setattr(runs, "compute_unit", counting)  # the local backend looks it up at each call
    settings = PanelSettings(families=("quadratic",), per_family=1, steps=20, seeds=1)
    tasks = panel_tasks(settings)
    assert len(tasks) == 1 and tasks[0].group == "unseen" and tasks[0].spec.split == "meta_test"
    theta = H.init_handset(jax.random.PRNGKey(0))
    first = evaluate_panel(theta, tasks, settings, tmp_path / "a")
    assert calls == {"lopt": 1, "adamlr": 1}
    assert baseline_cache_path().is_file()
    other = H.init_handset(jax.random.PRNGKey(0), scale=3.0)
    second = evaluate_panel(other, tasks, settings, tmp_path / "b")
    assert calls == {"lopt": 2, "adamlr": 1}  # the AdamLR grid was not run again
    for figures in (first, second):
        assert figures["tasks"] == 1 and figures["diverged"] == 0
        assert -3.0 <= figures["score"] <= 3.0
    assert panel_tasks(settings) == tasks  # fixed: the same tasks every time


def test_panel_command_scores_an_untrained_theta(tmp_path):
    import json

    from click.testing import CliRunner

    from lopt_trainer.app.cli import lopt

    out = CliRunner().invoke(lopt, ["panel", "--theta", "handset", "--out", str(tmp_path / "p"), "--json",
                                    "--no-progress", "--set", 'families=["twod"]', "--set", "per_family=1",
                                    "--set", "steps=20", "--set", "seeds=1"])
    assert out.exit_code == 0, out.output
    figures = json.loads(out.output.strip().splitlines()[-1])
    assert figures["theta"] == "handset" and figures["tasks"] == 1
    assert -3.0 <= figures["score"] <= 3.0
    text = CliRunner().invoke(lopt, ["panel", "--theta", "handset", "--out", str(tmp_path / "p"), "--no-progress",
                                     "--set", 'families=["twod"]', "--set", "per_family=1", "--set", "steps=20",
                                     "--set", "seeds=1"])
    assert text.exit_code == 0, text.output  # the text mode prints the same figures (it used to crash)
    assert f"score                {figures['score']:.5g}" in text.output and "legend:" in text.output
    tid = next(iter(figures["task_scores"]))
    assert tid in text.output and "tasks                1" in text.output
    bad = CliRunner().invoke(lopt, ["panel", "--theta", "handset", "--out", str(tmp_path / "q"),
                                    "--set", "per_family=0"])
    assert bad.exit_code == 2 and "per_family" in bad.output


def test_panel_keeps_a_new_best_only_beyond_the_noise_and_a_fresh_run_ignores_an_old_one(tmp_path, monkeypatch):
    import json

    from lopt_trainer.evaluation.panel import PanelSettings
    from lopt_trainer.meta import run_panel as P
    from lopt_trainer.meta.run_panel import Panel
    from lopt_trainer.optimizer.protocol import hierarchical_lopt
    from lopt_trainer.theta.reference_io import load_reference_npz

    tasks = [f"t{i}" for i in range(16)]
    per_task = iter([
        (float("nan"), [0.0] * 16),               # step 0 (the hand-set θ itself): a NaN score
        (0.2, [0.2] * 16),                         # step 1: the first finite score starts the record
        (0.1, [0.1] * 16),                         # step 2: worse
        (0.5, [0.5] * 16),                         # step 3: better on every task: its interval lies above 0
        (0.55, [1.75] * 8 + [-0.65] * 8),          # step 4: a higher mean, but half the tasks worse: not kept
        (-1.0, [-1.0] * 16),                       # a fresh run's first evaluation
    ])

    folders = []

    def fake(theta, tasks_, settings, out, progress=False, **kw):
        folders.append(out.name)
        score, values = next(per_task)
        return {"score": score, "beats_global": 0.5, "beats_per_task": 0.0, "median_improvement": 0.0,
                "diverged": 0, "tasks": 16, "task_scores": dict(zip(tasks, values))}

    import types

    monkeypatch.setattr(P, "panel_tasks", lambda settings, specs=None: [types.SimpleNamespace(task_id=t)
                                                                        for t in tasks])
    monkeypatch.setattr(P, "evaluate_panel", fake)
    base = jax.jit(hierarchical_lopt().init_handset)(jax.random.PRNGKey(0))  # as a run starts from it
    panel = Panel(PanelSettings(), tmp_path, hierarchical_lopt(), resumed=False)
    best_steps, records = [], []
    for step in range(5):
        theta = jax.tree_util.tree_map(lambda x: x + step, base)
        records.append(panel.evaluate(TrainerState(step, theta, None, [], SamplerState())))
        best_steps.append(json.loads((tmp_path / "best.json").read_text())["step"])
    assert best_steps == [0, 1, 1, 3, 3]
    assert records[3]["vs_best"]["low"] == pytest.approx(0.3) and records[3]["vs_best"]["high"] == pytest.approx(0.3)
    assert records[4]["score"] > records[3]["score"] and records[4]["vs_best"]["low"] < 0 < records[4]["vs_best"]["high"]
    assert records[3]["vs_handset"]["mean"] == pytest.approx(0.5)  # the step-0 evaluation was the hand-set θ's
    assert "handset" not in folders  # so it was not evaluated again
    kept = load_reference_npz(tmp_path / "best_theta.npz")
    np.testing.assert_allclose(np.asarray(kept["lstm"]["w"]), np.asarray(base["lstm"]["w"]) + 3, rtol=1e-6)
    assert Panel(PanelSettings(), tmp_path, hierarchical_lopt(), resumed=True).best["step"] == 3
    fresh = Panel(PanelSettings(), tmp_path, hierarchical_lopt(), resumed=False)
    assert fresh.best is None
    fresh.evaluate(TrainerState(0, base, None, [], SamplerState()))  # score -1.0: still the new run's best
    assert json.loads((tmp_path / "best.json").read_text())["score"] == -1.0


def test_paired_bootstrap_interval_on_a_toy_table():
    from lopt_trainer.evaluation.panel import paired_bootstrap

    a = {"x": 1.0, "y": 2.0, "z": 3.0, "only_a": 9.0}
    b = {"x": 0.5, "y": 1.5, "z": 2.5, "only_b": -9.0}
    same = paired_bootstrap(a, b)  # every shared task differs by exactly 0.5: no spread to resample
    assert same == {"mean": 0.5, "low": 0.5, "high": 0.5, "tasks": 3}
    d = {f"t{i}": v for i, v in enumerate([1.0, -1.0, 2.0, -2.0, 0.5, 0.0])}
    zeros = {k: 0.0 for k in d}
    r = paired_bootstrap(d, zeros, seed=3)
    assert r["mean"] == pytest.approx(0.5 / 6) and r["low"] < r["mean"] < r["high"] and r["tasks"] == 6
    assert r == paired_bootstrap(d, zeros, seed=3)  # deterministic in its seed
    wide = paired_bootstrap(d, zeros, level=0.99)
    assert wide["low"] <= r["low"] and wide["high"] >= r["high"]
    import math

    assert math.isnan(paired_bootstrap({"a": 1.0}, {"b": 1.0})["mean"])