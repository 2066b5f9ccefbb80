"""Inner training loop on tiny hand-built tasks: learning, determinism, divergence, compiled-code reuse,
the validation feed, and vmapped trials == per-trial runs."""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from families.base import SPLITS, Task
from lopt_trainer.inner import baselines, loop as inner_loop


@dataclasses.dataclass(frozen=True)
class FakeSpec:
    task_id: str
    seed: int = 0


# A linear regression on synthetic arrays. The functions are module-level so that every task built here shares
# the same function objects, as the Task contract requires for equal static_key.
BATCH = 16


def _lin_init(key):
    return {"w": 0.1 * jax.random.normal(key, (8,)), "b": jnp.zeros(())}


def _lin_loss(params, batch, key):
    del key
    return jnp.mean((batch["x"] @ params["w"] + params["b"] - batch["y"]) ** 2)


def _lin_sample(split, key):
    idx = jax.random.randint(key, (BATCH,), 0, split["x"].shape[0])
    return {"x": split["x"][idx], "y": split["y"][idx]}


def _lin_normalizer(loss):
    return loss / 4.0


def linreg_task(data_seed=0, n=128, seed=0):
    rng = np.random.default_rng(data_seed)
    w = rng.normal(size=8).astype(np.float32)
    splits = {}
    for s in SPLITS:
        x = rng.normal(size=(n, 8)).astype(np.float32)
        splits[s] = {"x": x, "y": (x @ w + 0.1 * rng.normal(size=n)).astype(np.float32)}
    return Task(spec=FakeSpec(f"linreg-{data_seed}-{n}", seed), init=_lin_init, loss=_lin_loss,
                sample_batch=_lin_sample, splits=splits, normalizer=_lin_normalizer, static_key=("linreg", n),
                batch_size=BATCH)


# A deterministic quadratic with no data.
_C = np.array([1.0, 2.0, 3.0], np.float32)


def _q_init(key):
    del key
    return {"x": jnp.array([1.0, -2.0, 3.0])}


def _q_loss(params, batch, key):
    del batch, key
    return jnp.sum(_C * params["x"] ** 2)


def _q_sample(split, key):
    del split, key
    return None


def quadratic_task():
    return Task(spec=FakeSpec("quadratic"), init=_q_init, loss=_q_loss, sample_batch=_q_sample,
                splits={s: {} for s in SPLITS}, normalizer=lambda x: x, static_key=("quadratic",), batch_size=1)


def sgd_factory(hp):
    return optax.sgd(hp["learning_rate"])


ADAM = baselines.optimizer_factory("adamlr", 60)
KW = dict(eval_every=20, eval_batches=2)


def test_training_reduces_loss_and_curve_shapes():
    task = linreg_task()
    res = inner_loop.train(task, ADAM, 60, hparams={"learning_rate": 0.03}, **KW)
    assert res.steps.tolist() == [0, 20, 40, 60]
    for s in SPLITS:
        assert res.losses[s].shape == (4,) and res.normalized[s].shape == (4,)
        assert res.final[s] < 0.3 * res.losses[s][0]
        np.testing.assert_allclose(res.normalized[s], res.losses[s] / 4.0, rtol=1e-6)
    assert res.step_losses.shape == (60,)
    assert not res.diverged and res.diverged_at == -1
    assert res.wall_time >= res.compile_time >= 0


def test_uneven_chunks():
    res = inner_loop.train(quadratic_task(), sgd_factory, 25, hparams={"learning_rate": 0.01}, eval_every=10,
                           eval_batches=1)
    assert res.steps.tolist() == [0, 10, 20, 25]
    assert res.step_losses.shape == (25,)
    # Deterministic quadratic, plain SGD: the curve is the closed form (1 - 2·lr·c)^(2t)·c·x0².
    x0 = np.array([1.0, -2.0, 3.0])
    for t, loss in zip(res.steps, res.losses["test"]):
        np.testing.assert_allclose(loss, np.sum(_C * (x0 * (1 - 0.02 * _C) ** t) ** 2), rtol=1e-5)


def test_same_seed_same_bytes_other_seed_differs():
    task = linreg_task()
    a = inner_loop.train(task, ADAM, 60, hparams={"learning_rate": 0.01}, seed=3, **KW)
    b = inner_loop.train(task, ADAM, 60, hparams={"learning_rate": 0.01}, seed=3, **KW)
    c = inner_loop.train(task, ADAM, 60, hparams={"learning_rate": 0.01}, seed=4, **KW)
    for s in SPLITS:
        assert a.losses[s].tobytes() == b.losses[s].tobytes()
    assert a.step_losses.tobytes() == b.step_losses.tobytes()
    assert a.losses["train"].tobytes() != c.losses["train"].tobytes()


def test_divergence_is_flagged_not_raised():
    res = inner_loop.train(quadratic_task(), sgd_factory, 60, hparams={"learning_rate": 1e3}, **KW)
    assert bool(res.diverged)
    assert 0 <= int(res.diverged_at) < 60
    k = int(res.diverged_at)
    assert not np.isfinite(res.step_losses[k]) and np.all(np.isnan(res.step_losses[k + 1:]))
    assert np.all(np.isfinite(res.step_losses[:k]))
    assert np.isfinite(res.losses["train"][0])
    assert all(np.all(~np.isfinite(res.losses[s][1:])) for s in SPLITS)
    assert not np.isfinite(res.final["test"])


def test_compiled_chunk_reused_across_tasks_of_equal_static_key():
    inner_loop.clear_compiled_cache()
    before = inner_loop.trace_counts()
    inner_loop.train(linreg_task(data_seed=1), ADAM, 60, hparams={"learning_rate": 0.01}, **KW)
    mid = inner_loop.trace_counts()
    assert mid.get("chunk", 0) - before.get("chunk", 0) == 1
    assert mid.get("init", 0) - before.get("init", 0) == 1
    assert mid.get("eval", 0) - before.get("eval", 0) == 1
    # Another task with the same static_key, other data, other seed and learning rate: no new trace.
    r = inner_loop.train(linreg_task(data_seed=2), ADAM, 60, hparams={"learning_rate": 0.1}, seed=5, **KW)
    assert inner_loop.trace_counts() == mid
    assert r.compile_time == 0.0
    # A different static_key (other data shape) is traced again.
    inner_loop.train(linreg_task(data_seed=2, n=64), ADAM, 60, hparams={"learning_rate": 0.1}, **KW)
    assert inner_loop.trace_counts()["chunk"] == mid["chunk"] + 1


class CountingState(NamedTuple):
    updates: jax.Array
    feeds: jax.Array
    last_value: jax.Array
    last_valid: jax.Array


class FakeLearnedOptimizer(optax.GradientTransformationExtraArgs):
    """SGD that records the losses it is given, with the learned optimizer's validation entry point."""

    def observe_validation(self, state, valid_loss):
        return state._replace(feeds=state.feeds + 1, last_valid=valid_loss)


def fake_learned(lr=0.01):
    def init(params):
        del params
        z = jnp.zeros([], jnp.float32)
        return CountingState(jnp.zeros([], jnp.int32), jnp.zeros([], jnp.int32), z, z)

    def update(grads, state, params=None, *, value=None, **extra):
        del params, extra
        updates = jax.tree_util.tree_map(lambda g: -lr * g, grads)
        return updates, state._replace(updates=state.updates + 1, last_value=value)

    return FakeLearnedOptimizer(init, update)


@pytest.mark.parametrize("steps,valid_every", [(60, 10), (60, 7)])
def test_validation_feed_every_k_steps(steps, valid_every):
    tx = fake_learned()

    def factory(hp):
        del hp
        return tx

    res = inner_loop.train(quadratic_task(), factory, steps, hparams={}, valid_every=valid_every, **KW)
    assert not res.diverged
    state = _final_state(quadratic_task(), tx, steps, valid_every)
    assert int(state.updates) == steps
    assert int(state.feeds) == steps // valid_every
    # The loss handed to update is the training loss of the last step.
    np.testing.assert_allclose(float(state.last_value), res.step_losses[-1], rtol=1e-6)
    # The fed validation loss is the loss at the parameters after update number (feeds · k).
    x = np.array([1.0, -2.0, 3.0]) * (1 - 0.02 * _C) ** (int(state.feeds) * valid_every)
    np.testing.assert_allclose(float(state.last_valid), np.sum(_C * x**2), rtol=1e-5)


def _final_state(task, tx, steps, valid_every):
    """Run the loop's own chunk function directly to read the optimizer state it ends with."""
    settings = inner_loop._LoopSettings(eval_batches=1, valid_every=valid_every, valid_split="inner_valid")
    init, make_chunk = inner_loop._make_run_fns(task, lambda hp: tx, settings)
    keys = inner_loop._run_keys(task, 0)
    carry = init(keys, dict(task.splits), {})
    carry, _ = jax.jit(make_chunk(steps))(carry, jnp.int32(0), keys, dict(task.splits), {})
    return carry[1]


def test_plain_optax_transform_accepted():
    res = inner_loop.train(linreg_task(), optax.adam(0.03), 60, **KW)
    assert res.final["test"] < 0.3 * res.losses["test"][0]


def test_vmapped_grid_equals_per_trial_loop():
    task = linreg_task()
    grid = [{"learning_rate": lr} for lr in (1e-3, 1e-2, 1e-1)]
    seeds = [0, 7]
    many = inner_loop.train_many(task, ADAM, grid, seeds, 60, **KW)
    assert many.batch_shape == (3, 2)
    assert many.losses["test"].shape == (3, 2, 4) and many.step_losses.shape == (3, 2, 60)
    for i, hp in enumerate(grid):
        for j, seed in enumerate(seeds):
            one = inner_loop.train(task, ADAM, 60, hparams=hp, seed=seed, **KW)
            sub = many.index(i, j)
            for s in SPLITS:
                np.testing.assert_allclose(sub.losses[s], one.losses[s], rtol=2e-5, atol=1e-7)
            np.testing.assert_allclose(sub.step_losses, one.step_losses, rtol=2e-5, atol=1e-7)
            assert sub.meta["hparams"] == hp and sub.meta["seed"] == seed


def test_vmapped_trials_diverge_independently():
    grid = [{"learning_rate": 0.01}, {"learning_rate": 1e3}]
    many = inner_loop.train_many(quadratic_task(), sgd_factory, grid, [0], 60, **KW)
    assert many.diverged[:, 0].tolist() == [False, True]
    one = inner_loop.train(quadratic_task(), sgd_factory, 60, hparams=grid[0], **KW)
    np.testing.assert_allclose(many.index(0, 0).losses["train"], one.losses["train"], rtol=1e-6)
    # Every trial diverged: the loop stops early and pads with NaN, without raising.
    bad = inner_loop.train_many(quadratic_task(), sgd_factory, [{"learning_rate": 1e3}], [0, 1], 60, **KW)
    assert bad.diverged.all() and bad.steps.tolist() == [0, 20, 40, 60]
    assert np.isnan(bad.losses["test"][..., -1]).all()


# ----------------------------------------------------------------------------------------------------- CLI


def test_run_training_writes_json_arrow_png(tmp_path, monkeypatch):
    import json

    import pyarrow as pa

    from lopt_trainer.app import train_task as training

    monkeypatch.setenv("TASKGEN_JAX_CACHE", str(tmp_path / "jax"))
    summary = training.run_training(linreg_task(), "adamlr", 60, trials=3, eval_every=20, eval_batches=2,
                                    out_dir=str(tmp_path / "out"), plot=True, progress=False)
    assert summary["trials"] == 3 and summary["best_trial"] == 2  # the largest of 1e-7, 1e-3.75, 10^-0.5
    assert summary["final"]["test"] < 1.0 and not summary["diverged"]
    stem = tmp_path / "out" / "linreg-0-128.adamlr.seed0"
    data = json.loads((tmp_path / "out" / "linreg-0-128.adamlr.seed0.json").read_text())
    assert data["batch_shape"] == [3, 1] and data["steps"] == [0, 20, 40, 60]
    assert data["meta"]["best_trial"] == 2
    with pa.ipc.open_file(str(stem) + ".arrow") as reader:
        table = reader.read_all()
    assert table.num_rows == 3 * 4
    assert {"trial", "seed_index", "step", "test", "test_normalized", "diverged"} <= set(table.column_names)
    assert (tmp_path / "out" / "linreg-0-128.adamlr.seed0.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".tmp-")]


def test_train_command_resolves_task_and_prints(tmp_path, monkeypatch):
    import json

    import taskgen
    from click.testing import CliRunner

    from lopt_trainer.app import cli as train_cli

    seen = {}

    def resolve_spec(task_id, suite=None):
        seen["args"] = (task_id, suite)
        return "spec"

    monkeypatch.setattr(taskgen, "resolve_spec", resolve_spec, raising=False)
    monkeypatch.setattr(taskgen, "build_task", lambda spec: linreg_task(), raising=False)
    monkeypatch.setenv("TASKGEN_JAX_CACHE", str(tmp_path / "jax"))
    runner = CliRunner()
    out = runner.invoke(train_cli.train, ["linreg", "--optimizer", "adam", "--lr", "0.03", "--steps", "60",
                                          "--eval-every", "20", "--eval-batches", "2", "--out",
                                          str(tmp_path), "--json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output.strip().splitlines()[-1])
    assert seen["args"] == ("linreg", None)
    assert summary["optimizer"] == "adam" and summary["hparams"] == {"learning_rate": 0.03}
    assert summary["final"]["train"] < 1.0
    bad = runner.invoke(train_cli.train, ["linreg", "--optimizer", "lopt", "--theta", "nosuch.npz"])
    assert bad.exit_code == 2 and "Invalid value for '--theta': 'nosuch.npz' is neither" in bad.output
    # without --theta the learned optimizer runs with the shipped θ (issue 16: one θ grammar, default pretrained)
