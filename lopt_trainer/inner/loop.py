"""The inner training loop: train one task with one optimizer (or a batch of trials × seeds) and record curves.

How a run goes:

* Keys. ``base = fold_in(task.init_key(), seed)`` is split into (init, train-data, validation-feed, eval) keys;
  step ``t`` draws its batch and loss key from ``fold_in(train_key, t)``, so a run does not depend on how it is
  chunked.
* Steps run under ``lax.scan`` in chunks of ``eval_every`` steps, one compiled call per chunk; after every chunk
  (and once before the first step) the parameters are evaluated on all four splits, averaging ``eval_batches``
  batches per split. Curves therefore have points at steps ``0, e, 2e, …, steps``.
* The split arrays and the hyperparameters are jit *arguments*. Compiled functions are cached in-process keyed on
  ``(task.static_key, optimizer identity, chunk length, loop settings, argument shapes)``: tasks of equal
  ``static_key`` (and equal array shapes) reuse one compiled chunk. Call :func:`enable_compilation_cache` for
  the on-disk cache across processes (the CLI does).
* Optimizers are optax transformations, always updated with ``value=loss`` (plain ones are wrapped with
  ``optax.with_extra_args_support``). If the transformation takes validation losses — it has an
  ``observe_validation(state, valid_loss) -> state`` attribute, or its state holds a learned-optimizer state
  anywhere (e.g. ``optax.chain(clip, optax_lopt(θ))``, ``optax.MultiSteps(optax_lopt(θ), k)``; see
  :func:`lopt_trainer.optimizer.optax_api.validation_feed`) — then after every ``valid_every``-th update
  (steps k, 2k, …; default k = :data:`DEFAULT_VALID_EVERY` = 10) the loss of one ``valid_split`` batch
  (default ``inner_valid``) at the updated parameters is fed to it.
* Divergence: a non-finite training loss, non-finite parameters after an update, or a non-finite evaluation
  marks the run diverged. From then on parameters and optimizer state are frozen (the last finite values),
  recorded losses are NaN, and once every run in the batch has diverged no further chunks are run. Nothing
  raises.
* Batches of runs (:func:`train_many`): hyperparameter trials × seeds are ``vmap``-ed into one compiled run;
  the optimizer is built *inside* the trace from a factory ``hparams -> GradientTransformation`` so each
  hyperparameter is an array (a whole AdamLR grid is one compiled run). With several local devices the runs
  are split over them (:mod:`lopt_trainer.common.devices`): one program, each device computing its rows.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lopt_trainer.common.devices import pad_rows, padded_rows, place_rows, row_sharding
from lopt_trainer.common.program_cache import ProgramCache
from lopt_trainer.common.run_files import clean_json
from lopt_trainer.optimizer.optax_api import validation_feed

SPLITS = ("train", "inner_valid", "outer_valid", "test")
"""Evaluated splits, in the order of the curve arrays."""

DEFAULT_VALID_EVERY = 10
"""Default period k (in steps) of the validation feed to optimizers that take validation losses."""

DEFAULT_EVAL_BATCHES = 4
"""Default number of batches averaged per split and evaluation point."""

_PROGRAMS = ProgramCache(64)
_trace_counts: collections.Counter = collections.Counter()


def trace_counts() -> dict:
    """How many times the loop's Python functions were traced in this process: ``{"init": i, "chunk": c,
    "eval": e}``.

    A new trace means a new compilation (or a persistent-cache hit); tests use it to check compiled-code reuse.
    """
    return dict(_trace_counts)


def clear_compiled_cache() -> None:
    """Forget every compiled loop function held in this process (the on-disk cache is untouched)."""
    _PROGRAMS.clear()


# ------------------------------------------------------------------------------------------------- results


@dataclasses.dataclass
class TrainResult:
    """Curves and outcome of one run, or of a batch of runs (then every array has leading ``batch_shape``).

    Fields:
      steps: int array ``[P]``: the step at which each curve point was taken (0 = before the first update).
      losses: split -> float array ``[*batch_shape, P]``: mean loss over ``eval_batches`` batches (NaN after
        divergence).
      normalized: split -> the same through ``task.normalizer``.
      step_losses: ``[*batch_shape, steps]``: the training minibatch loss seen at every step (NaN after divergence).
      diverged: bool array ``[*batch_shape]``; diverged_at: int array, first step found non-finite (−1 if none).
      wall_time: seconds for the whole call, compile included; compile_time: seconds spent tracing and compiling
        (0 when every function came from the in-process cache).
      batch_shape: ``()`` for :func:`train`, ``(n_trials, n_seeds)`` for :func:`train_many`.
      meta: JSON-able description (task id, optimizer, seeds, hyperparameters, loop settings).
    """

    steps: np.ndarray
    losses: dict
    normalized: dict
    step_losses: np.ndarray
    diverged: np.ndarray
    diverged_at: np.ndarray
    wall_time: float
    compile_time: float
    batch_shape: tuple = ()
    meta: dict = dataclasses.field(default_factory=dict)

    @property
    def final(self) -> dict:
        """split -> final mean loss (last curve point), array of ``batch_shape`` (NaN if diverged)."""
        return {s: v[..., -1] for s, v in self.losses.items()}

    @property
    def final_normalized(self) -> dict:
        """split -> final normalised loss, array of ``batch_shape``."""
        return {s: v[..., -1] for s, v in self.normalized.items()}

    def index(self, *idx) -> "TrainResult":
        """The result of one run of a batch, e.g. ``res.index(trial, seed)``; timings are the batch's."""
        idx = tuple(idx)
        if len(idx) != len(self.batch_shape):
            raise ValueError(f"need {len(self.batch_shape)} indices for batch shape {self.batch_shape}")
        meta = dict(self.meta)
        if len(idx) == 2:
            meta["hparams"] = self.meta.get("hparams", [None] * (idx[0] + 1))[idx[0]]
            meta["seed"] = self.meta.get("seeds", [None] * (idx[1] + 1))[idx[1]]
            meta.pop("seeds", None)
        return TrainResult(
            steps=self.steps,
            losses={s: v[idx] for s, v in self.losses.items()},
            normalized={s: v[idx] for s, v in self.normalized.items()},
            step_losses=self.step_losses[idx],
            diverged=self.diverged[idx],
            diverged_at=self.diverged_at[idx],
            wall_time=self.wall_time,
            compile_time=self.compile_time,
            batch_shape=(),
            meta=meta,
        )


# ------------------------------------------------------------------------------------------- pure building blocks


def _scalar_loss(loss_fn):
    def f(params, batch, key):
        out = loss_fn(params, batch, key)
        return out[0] if isinstance(out, tuple) else out

    return f


def _tree_all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _tree_select(pred, on_true, on_false):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def _with_extra_args(tx):
    # A transform with a validation path is taken to accept extra args (value=...) even if not typed so.
    if isinstance(tx, optax.GradientTransformationExtraArgs) or hasattr(tx, "observe_validation"):
        return tx
    return optax.with_extra_args_support(tx)


@dataclasses.dataclass(frozen=True)
class _LoopSettings:
    eval_batches: int
    valid_every: int
    valid_split: str


def _make_eval_fn(task, eval_batches: int):
    """Single-run ``evaluate(params, diverged, first_bad, step, keys, splits)``.

    Returns ``(diverged', first_bad', means[4], norms[4])``: the mean loss of ``eval_batches`` batches per split
    and its normalised value; a non-finite mean marks the run diverged (at ``step``); an already diverged run
    (whose parameters were frozen at their last finite values) reports NaN.
    """
    # Capture the task's functions, never the task: cached compiled functions must not keep its data alive.
    loss_fn, sample_batch, normalizer = _scalar_loss(task.loss), task.sample_batch, task.normalizer

    def evaluate(params, diverged, first_bad, step, keys, splits):
        _trace_counts["eval"] += 1
        key = jax.random.fold_in(keys[3], step)
        means = []
        for i, split in enumerate(SPLITS):
            batch_keys = jax.random.split(jax.random.fold_in(key, i), eval_batches)

            def one(k, split=split):
                kb, kl = jax.random.split(k)
                return loss_fn(params, sample_batch(splits[split], kb), kl)

            means.append(jnp.mean(jax.vmap(one)(batch_keys)))
        means = jnp.stack(means).astype(jnp.float32)
        norms = jnp.stack([jnp.asarray(normalizer(m), jnp.float32) for m in means])
        bad = ~jnp.all(jnp.isfinite(means))
        first_bad = jnp.where(~diverged & bad, step, first_bad).astype(jnp.int32)
        means = jnp.where(diverged & jnp.isfinite(means), jnp.nan, means)
        norms = jnp.where(jnp.isfinite(means), norms, means)
        return diverged | bad, first_bad, means, norms

    return evaluate


def _make_run_fns(task, factory, settings: _LoopSettings):
    """Single-run ``init(keys, splits, hparams) -> carry`` and ``make_chunk(n)`` giving
    ``chunk(carry, start, keys, splits, hparams) -> (carry, step_losses[n])`` (pure; to be jitted, maybe vmapped).

    ``carry = (params, opt_state, diverged, first_bad)``.
    """
    loss_fn, sample_batch, init_params = _scalar_loss(task.loss), task.sample_batch, task.init

    def init(keys, splits, hparams):
        _trace_counts["init"] += 1
        del splits
        tx = _with_extra_args(factory(hparams))
        params = init_params(keys[0])
        bad = ~_tree_all_finite(params)
        return params, tx.init(params), bad, jnp.where(bad, 0, -1).astype(jnp.int32)

    def make_chunk(n: int):
        def chunk(carry, start, keys, splits, hparams):
            _trace_counts["chunk"] += 1
            train_key, valid_key = keys[1], keys[2]
            raw_tx = factory(hparams)
            observe = validation_feed(raw_tx, carry[1])  # decided at trace time from the state's structure
            tx = _with_extra_args(raw_tx)

            def step(c, t):
                params, opt_state, diverged, first_bad = c
                kb, kl = jax.random.split(jax.random.fold_in(train_key, t))
                batch = sample_batch(splits["train"], kb)
                loss, grads = jax.value_and_grad(loss_fn)(params, batch, kl)
                updates, new_state = tx.update(grads, opt_state, params, value=loss)
                new_params = optax.apply_updates(params, updates)
                if observe is not None:

                    def feed(s):
                        kvb, kvl = jax.random.split(jax.random.fold_in(valid_key, t))
                        vloss = loss_fn(new_params, sample_batch(splits[settings.valid_split], kvb), kvl)
                        return observe(s, vloss)

                    new_state = jax.lax.cond((t + 1) % settings.valid_every == 0, feed, lambda s: s, new_state)
                bad = ~(jnp.isfinite(loss) & _tree_all_finite(new_params))
                now_bad = diverged | bad
                params = _tree_select(now_bad, params, new_params)
                opt_state = _tree_select(now_bad, opt_state, new_state)
                first_bad = jnp.where(~diverged & bad, t, first_bad).astype(jnp.int32)
                recorded = jnp.where(diverged, jnp.nan, loss).astype(jnp.float32)
                return (params, opt_state, now_bad, first_bad), recorded

            ts = start + jnp.arange(n, dtype=jnp.int32)
            return jax.lax.scan(step, carry, ts)

        return chunk

    return init, make_chunk


# ------------------------------------------------------------------------------------------------ compilation


def _get_compiled(key, make_fn, args):
    """A compiled executable for ``jit(make_fn())`` at ``args``' shapes, from the cache or freshly compiled.

    Returns ``(executable, seconds spent compiling)``.
    """
    return _PROGRAMS.get(key, lambda: jax.jit(make_fn()), args)


def _as_hparam_leaf(x):
    if isinstance(x, (bool, int, float, np.bool_, np.integer, np.floating)):
        return np.asarray(x, np.float32)
    return x


def _stack_hparams(hparams_list):
    hparams_list = [jax.tree_util.tree_map(_as_hparam_leaf, h) for h in hparams_list]
    return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *hparams_list)


def _run_keys(task, seed):
    base = jax.random.fold_in(task.init_key(), seed)
    return jax.random.split(base, 4)


# ---------------------------------------------------------------------------------------------- the driver


def _checked_eval_every(eval_every, steps: int, settings) -> int:
    """``eval_every`` (default ``steps // 20``, at least 1) after checking it and the loop settings
    (``ValueError`` naming the bad one)."""
    eval_every = max(1, steps // 20) if eval_every is None else int(eval_every)
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    if settings.eval_batches < 1 or settings.valid_every < 1:
        raise ValueError("eval_batches and valid_every must be >= 1")
    if settings.valid_split not in SPLITS:
        raise ValueError(f"valid_split must be one of {SPLITS}, got {settings.valid_split!r}")
    return eval_every


def _run(task, factory, factory_id, hparams, keys, batched, steps, eval_every, settings, progress, meta,
         sharding=None):
    t_start = time.perf_counter()
    compile_time = 0.0
    eval_every = _checked_eval_every(eval_every, steps, settings)
    splits = dict(task.splits)
    base_key = (task.static_key, factory_id, batched, settings)
    init_fn, make_chunk = _make_run_fns(task, factory, settings)
    eval_fn = _make_eval_fn(task, settings.eval_batches)

    def batched_fn(fn, in_axes):
        return jax.vmap(fn, in_axes=in_axes) if batched else fn

    def evaluate(carry, step):
        # Evaluation does not depend on the optimizer: one compiled function per task shape serves all of them.
        nonlocal compile_time
        args = (carry[0], carry[2], carry[3], np.asarray(step, np.int32), keys, splits)
        exe, dt = _get_compiled(("eval", task.static_key, batched, settings.eval_batches),
                                lambda: batched_fn(eval_fn, (0, 0, 0, None, 0, None)), args)
        compile_time += dt
        diverged, first_bad, means, norms = exe(*args)
        return (carry[0], carry[1], diverged, first_bad), np.asarray(means), np.asarray(norms)

    init_args = (keys, splits, hparams)
    exe, dt = _get_compiled(("init",) + base_key, lambda: batched_fn(init_fn, (0, None, 0)), init_args)
    compile_time += dt
    # Rows split over devices: the carry keeps that split from the start (XLA may replicate some initial leaves,
    # and a chunk compiled for those would be compiled again for the split carry it returns).
    carry, means, norms = evaluate(place_rows(exe(*init_args), sharding), 0)

    lengths = [eval_every] * (steps // eval_every) + ([steps % eval_every] if steps % eval_every else [])
    eval_steps = [0]
    mean_list, norm_list, step_list = [means], [norms], []
    done = 0
    for n in lengths:
        if bool(np.all(np.asarray(carry[2]))):
            break  # every run diverged: the rest would only compute NaN
        args = (carry, np.asarray(done, np.int32), keys, splits, hparams)
        exe, dt = _get_compiled(
            ("chunk", n) + base_key, lambda n=n: batched_fn(make_chunk(n), (0, None, 0, None, 0)), args
        )
        compile_time += dt
        carry, step_losses = exe(*args)
        done += n
        carry, means, norms = evaluate(carry, done)
        eval_steps.append(done)
        mean_list.append(means)
        norm_list.append(norms)
        step_list.append(np.asarray(step_losses))
        if progress is not None:
            progress(done, steps)
    batch_shape = np.shape(np.asarray(carry[2]))
    # Pad the points never run (all diverged) with NaN.
    for n in lengths[len(step_list):]:
        done += n
        eval_steps.append(done)
        mean_list.append(np.full(batch_shape + (len(SPLITS),), np.nan, np.float32))
        norm_list.append(np.full(batch_shape + (len(SPLITS),), np.nan, np.float32))
        step_list.append(np.full(batch_shape + (n,), np.nan, np.float32))
        if progress is not None:
            progress(done, steps)

    means = np.stack(mean_list, axis=-1)  # [*batch, split, P]
    norms = np.stack(norm_list, axis=-1)
    if step_list:  # scan stacks steps last per run (vmap puts the batch axis first)
        step_losses = np.concatenate(step_list, axis=-1)
    else:
        step_losses = np.zeros(batch_shape + (0,), np.float32)
    return TrainResult(
        steps=np.asarray(eval_steps, np.int64),
        losses={s: means[..., i, :] for i, s in enumerate(SPLITS)},
        normalized={s: norms[..., i, :] for i, s in enumerate(SPLITS)},
        step_losses=step_losses,
        diverged=np.asarray(carry[2]),
        diverged_at=np.asarray(carry[3]).astype(np.int64),
        wall_time=time.perf_counter() - t_start,
        compile_time=compile_time,
        batch_shape=(),
        meta=dict(meta, steps=steps, eval_every=eval_every, eval_batches=settings.eval_batches,
                  valid_every=settings.valid_every, valid_split=settings.valid_split),
    )


def _task_id(task):
    return getattr(task.spec, "task_id", None)


def train(
    task,
    optimizer,
    steps: int,
    *,
    hparams: Any = None,
    seed: int = 0,
    eval_every: int | None = None,
    eval_batches: int = DEFAULT_EVAL_BATCHES,
    valid_every: int = DEFAULT_VALID_EVERY,
    valid_split: str = "inner_valid",
    progress: Callable[[int, int], None] | None = None,
    name: str | None = None,
) -> TrainResult:
    """Train ``task`` for ``steps`` steps with ``optimizer`` and return its curves (a :class:`TrainResult`).

    ``optimizer`` is an optax ``GradientTransformation`` (or ``...ExtraArgs``), or — when ``hparams`` is given —
    a factory ``hparams -> GradientTransformation`` called inside the trace with ``hparams`` (a pytree of
    floats/arrays) passed as jit arguments; use the factory form (e.g. ``baselines.optimizer_factory`` or
    ``optax_lopt`` with θ) to reuse one compilation across hyperparameter values. Compiled code is cached per
    optimizer object / factory function, so pass the same object to reuse it.

    ``seed`` picks parameter init and data order (keys derive from ``fold_in(task.init_key(), seed)``);
    ``eval_every`` (default ``max(1, steps // 20)``) is the spacing of curve points and the chunk length;
    ``eval_batches`` batches are averaged per split and point; ``valid_every``/``valid_split`` set the
    validation feed to optimizers that take one (see the module docstring); ``progress(done, total)`` is called
    after every chunk; ``name`` is recorded in ``meta["optimizer"]``.
    """
    if hparams is None:
        tx = optimizer
        # Keyed on id(tx): the cached entry's closure holds tx, so the id cannot be reused while cached.
        factory, factory_id, hp = (lambda _h: tx), ("tx", id(tx)), ()
    else:
        factory, factory_id, hp = optimizer, ("factory", optimizer), jax.tree_util.tree_map(_as_hparam_leaf, hparams)
    settings = _LoopSettings(int(eval_batches), int(valid_every), valid_split)
    meta = {"task_id": _task_id(task), "optimizer": name, "seed": int(seed), "hparams": clean_json(hparams, max_array=64)}
    return _run(task, factory, factory_id, hp, _run_keys(task, seed), False, int(steps), eval_every, settings,
                progress, meta)


def train_many(
    task,
    optimizer_factory: Callable[[Any], optax.GradientTransformation],
    hparams_list: Sequence[Any],
    seeds: Sequence[int] = (0,),
    steps: int = 1000,
    *,
    eval_every: int | None = None,
    eval_batches: int = DEFAULT_EVAL_BATCHES,
    valid_every: int = DEFAULT_VALID_EVERY,
    valid_split: str = "inner_valid",
    progress: Callable[[int, int], None] | None = None,
    name: str | None = None,
) -> TrainResult:
    """Train ``task`` once per (trial, seed) pair as ONE vmapped, compiled run.

    ``optimizer_factory(hparams) -> GradientTransformation`` is traced with each trial's hyperparameters as
    arrays (all dicts in ``hparams_list`` must share one structure; Python numbers and bools become float32).
    Returns a :class:`TrainResult` with ``batch_shape == (len(hparams_list), len(seeds))``; ``res.index(i, j)``
    gives trial i, seed j, which equals ``train(task, optimizer_factory, steps, hparams=hparams_list[i],
    seed=seeds[j])`` up to float rounding. Other arguments as in :func:`train`.
    """
    if not hparams_list or not seeds:
        raise ValueError("need at least one trial and one seed")
    n_t, n_s = len(hparams_list), len(seeds)
    stacked = _stack_hparams(hparams_list)
    hp = jax.tree_util.tree_map(lambda a: np.repeat(a, n_s, axis=0), stacked)
    keys = jnp.stack([_run_keys(task, s) for s in seeds])  # [n_s, 4, 2]
    keys = jnp.tile(keys, (n_t, 1, 1))
    n = n_t * n_s
    sharding = row_sharding()  # several local devices: the rows are split over them (module docstring)
    hp, keys = place_rows(pad_rows((hp, keys), padded_rows(n, sharding)), sharding)
    settings = _LoopSettings(int(eval_batches), int(valid_every), valid_split)
    meta = {"task_id": _task_id(task), "optimizer": name, "seeds": [int(s) for s in seeds],
            "hparams": clean_json(list(hparams_list), max_array=64)}
    res = _run(task, optimizer_factory, ("factory", optimizer_factory), hp, keys, True, int(steps), eval_every,
               settings, progress, meta, sharding)
    b = (n_t, n_s)

    def rows(v):  # the padding rows dropped, the rest as [trial, seed, ...]
        return v[:n].reshape(b + v.shape[1:])

    return dataclasses.replace(
        res,
        losses={s: rows(v) for s, v in res.losses.items()},
        normalized={s: rows(v) for s, v in res.normalized.items()},
        step_losses=rows(res.step_losses),
        diverged=rows(res.diverged),
        diverged_at=rows(res.diverged_at),
        batch_shape=b,
    )
