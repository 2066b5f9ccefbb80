"""The outer loop of meta-training, :func:`meta_train`: a run folder in, θ trained for ``steps`` outer steps.

Python use::

    from lopt_trainer.meta import MetaTrainConfig, meta_train
    result = meta_train(MetaTrainConfig(steps=200, filters={"family": ["quadratic"], "split": ["meta_train"]}),
                        "runs/q1")
    result.theta

The loop reads top to bottom: resolve the settings (a resumed run continues with its stored ones), choose the
tasks, build or restore the state, then take outer steps (:func:`lopt_trainer.meta.outer.train_step`) and run
the cadences after each: held-out evaluation, the quality panel, checkpoints. Every random choice derives from
the seed and the outer step (PRNG keys via ``fold_in``; host decisions via
:func:`lopt_trainer.meta.task_sampler.rng_for`), so a run resumed from a checkpoint repeats the uninterrupted run
bit for bit. SIGINT/SIGTERM end the run after the current step, with a checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import sys
import time
from pathlib import Path

import jax
import optax

import taskgen
from lopt_trainer.common import checkpoint as ckpt
from lopt_trainer.common.folder_lock import folder_lock
from lopt_trainer.common.progress import progress_bar
from lopt_trainer.common.ray_local import local_ray_usable
from lopt_trainer.common.run_files import COMMAND_FILE, remove_files, write_command, write_json
from lopt_trainer.errors import ResumeError, RunExistsError
from lopt_trainer.meta.config import Cadence, MetaTrainConfig, RunSettings, TaskSource
from lopt_trainer.meta.estimators import PROGRAMS, part_mask
from lopt_trainer.meta.held_out import evaluate
from lopt_trainer.meta.logs import CSV_FILE, TENSORBOARD_DIR, RunLogs
from lopt_trainer.meta.metrics import METRICS_FILE, append_metrics, read_metrics, truncate_metrics
from lopt_trainer.meta.outer import build_outer_optimizer, train_step
from lopt_trainer.meta.plan import check_family_draw
from lopt_trainer.meta.ray_pool import RayGradientPool
from lopt_trainer.meta.resume import check_tasks, resolve_resumed_config, task_digest
from lopt_trainer.meta.run_panel import START_THETA, Panel, end_summary
from lopt_trainer.meta.portable import (CONFIG_FILE, RUN_HISTORY_FILE, PortableState, finish_interrupted_export,
                                        read_run_history, read_state, start_session, warn_fresh_estimators)
from lopt_trainer.meta.state import TrainerState, initial_state, restore_portable, restore_state, save_state
from lopt_trainer.meta.task_sampler import rng_for
from lopt_trainer.meta.work import WorkerContext, import_plugins, make_context
from lopt_trainer.optimizer.protocol import hierarchical_lopt, resolve_lopt
from lopt_trainer.theta.reference_io import save_reference_npz
from taskgen.jax_cache import enable_compilation_cache


THETA_FILE = "theta.npz"
"""θ of the latest checkpoint in the reference layout (hierarchical optimizer only): ``RUN/theta.npz``."""

SUMMARY_FILE = "summary.json"
"""``RUN/summary.json``: why the run stopped and whether θ improved on its panel (written at the end)."""
RUN_FILES = ("config.json", COMMAND_FILE, METRICS_FILE, ckpt.FILENAME, ckpt.PREVIOUS, ckpt.DAMAGED, THETA_FILE,
             "best_theta.npz", "best.json", "best_previous_panel_theta.npz", "best_previous_panel.json", "panel",
             "meta_loss.png", "grad_norm.png", "throughput.png", "eval.png", "panel.png", RUN_HISTORY_FILE,
             SUMMARY_FILE, START_THETA, CSV_FILE, TENSORBOARD_DIR)
"""A run folder's own files (what ``--overwrite`` removes): settings, command, metrics, checkpoints, the latest θ
as ``.npz``, the panel's evaluations and best θ, the plots of ``taskgen lopt plot`` and the pretraining history
(:data:`~lopt_trainer.meta.portable.RUN_HISTORY_FILE`)."""


STOP_REASONS = {"steps": "reached its steps", "time": "its time limit (--hours) passed",
                "SIGINT": "interrupted (Ctrl-C)", "SIGTERM": "terminated (SIGTERM)"}
"""Why a run stopped, and how the end of a run says it."""


@dataclasses.dataclass
class RunResult:
    """What :func:`meta_train` returns: the final state, the run folder, whether a signal interrupted it, why it
    stopped (:data:`STOP_REASONS`) and the end summary (:func:`~lopt_trainer.meta.run_panel.end_summary`, None
    without a panel)."""

    state: TrainerState
    run_dir: Path
    interrupted: bool
    stop_reason: str = "steps"
    summary: dict | None = None

    @property
    def theta(self):
        """The meta-parameters at the end."""
        return self.state.theta


def meta_train(config: MetaTrainConfig, run_dir, *, resume: bool = False, specs=None, eval_specs=None,
               outer_optimizer: optax.GradientTransformation | None = None, progress: bool = True,
               backend=None, given_keys=None, allow_change: bool = False, overwrite: bool = False,
               record_command: bool = False, continue_from=None, max_seconds: float | None = None) -> RunResult:
    """Meta-train θ for ``config.steps`` outer steps into ``run_dir``.

    ``specs``/``eval_specs`` override the spec loading of the config (Python use); ``outer_optimizer`` overrides
    ``config.outer_opt`` (any optax transformation; a resumed run must get the same one). With ``resume`` the run
    continues from ``run_dir/checkpoint.msgpack`` (when present) with the config stored there, except ``steps``,
    ``workers``, ``address`` and ``pin_workers``, which are taken from ``config``; any other setting of
    ``config`` named in ``given_keys`` (None = all) that differs from the stored one raises ``ResumeError``,
    unless ``allow_change`` and it is safe to change (see :mod:`lopt_trainer.meta.resume`); a changed training
    task list raises ``ResumeError`` too. Without ``resume``, a folder that already holds a run (a checkpoint or
    metrics) raises :class:`~lopt_trainer.errors.RunExistsError` unless ``overwrite``, which first removes the
    run's own files (:data:`RUN_FILES`; other files in the folder stay). The folder is locked for the whole run
    (:mod:`lopt_trainer.common.folder_lock`: a second process gets
    :class:`~lopt_trainer.errors.FolderInUseError`). ``record_command``: write ``RUN/command.json`` (the
    command line) once the folder is claimed. ``backend`` overrides the Ray/in-process choice (an object with
    ``compute(theta, items)`` and ``close()``, like :class:`~lopt_trainer.meta.ray_pool.RayGradientPool`).

    ``continue_from``: a portable pretraining state directory (:mod:`lopt_trainer.meta.portable`) to continue,
    as ``--resume`` continues a checkpoint (its stored settings, the same checks against ``config``) but with
    fresh estimator states (a :class:`~lopt_trainer.meta.portable.FreshEstimatorsWarning` says so); a damaged or
    missing file of it raises :class:`~lopt_trainer.errors.PretrainStateError` before anything is written. With
    ``resume`` and a checkpoint in ``run_dir`` at least as far as the state, the run folder's own checkpoint is
    continued instead (a note on stderr says so); one behind the state raises ``ResumeError``.
    ``max_seconds``: stop after the outer step during which this many seconds of the loop have passed (None = no
    limit), with a checkpoint, as at ``steps``.
    """
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: continue the run or start it again")
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be > 0 (or None for no limit), got {max_seconds!r}")
    portable = read_state(continue_from) if continue_from is not None else None  # checked before any write
    if config.train_parts is not None:  # parts θ does not have: refused before the run folder is touched
        part_mask(jax.eval_shape(resolve_lopt(config.lopt).init, jax.random.PRNGKey(0)), tuple(config.train_parts))
    if not resume and portable is None:  # a fresh run: its task list and family draw are checked before any write
        s = config.split()
        if specs is None:
            specs, default_eval = load_specs_for(s.tasks)
            eval_specs = default_eval if eval_specs is None else eval_specs
        check_family_draw(s.plan, specs)
    with folder_lock(run_dir):
        claim_run_folder(run_dir, resume, overwrite)
        if record_command:
            write_command(run_dir)
        return _train(config, run_dir, resume, specs, eval_specs, outer_optimizer, progress, backend, given_keys,
                      allow_change, portable, max_seconds)


def claim_run_folder(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Make ``run_dir`` ready for a run (its lock held): with ``overwrite`` clear the run's own files
    (:data:`RUN_FILES`, nothing else), without ``resume`` refuse a folder that holds a run
    (:class:`~lopt_trainer.errors.RunExistsError`)."""
    if overwrite:
        remove_files(run_dir, RUN_FILES)
        return
    if resume:
        return
    metrics = run_dir / METRICS_FILE
    found = [n for n in (ckpt.FILENAME, ckpt.PREVIOUS) if (run_dir / n).is_file()]
    found += [METRICS_FILE] if metrics.is_file() and metrics.stat().st_size > 0 else []
    if found:
        raise RunExistsError(f"{run_dir} already holds a meta-training run ({', '.join(found)}); continue it with "
                             "--resume (resume=True) or start it again with --overwrite (overwrite=True)")


def _train(config: MetaTrainConfig, run_dir: Path, resume: bool, specs, eval_specs, outer_optimizer, progress: bool,
           backend, given_keys, allow_change: bool, portable: PortableState | None = None,
           max_seconds: float | None = None) -> RunResult:
    """The body of :func:`meta_train` once the run folder is claimed."""
    raw = ckpt.load_checkpoint(run_dir) if resume else None
    portable = continue_source(run_dir, raw, portable)
    raw = portable.as_checkpoint() if portable is not None else raw
    labels = source_labels(run_dir, portable)
    if raw is not None:
        stored = MetaTrainConfig.from_dict(json.loads(raw["config"]))
        config = resolve_resumed_config(stored, config, run_dir, given_keys, allow_change, **labels)
    s = config.split()
    if s.worker.compilation_cache != "":
        enable_compilation_cache(s.worker.compilation_cache or None)
    if specs is None:
        specs, default_eval = load_specs_for(s.tasks)
        eval_specs = default_eval if eval_specs is None else eval_specs
    if raw is not None:
        check_tasks(raw, specs, run_dir, s.tasks.describe(), what=labels.get("what"))
    check_family_draw(s.plan, specs)
    ctx = make_context(s.worker, specs)
    outer = outer_optimizer or build_outer_optimizer(s.outer)
    if raw is None:
        state = initial_state(ctx, s.init, outer)
    elif portable is not None:
        state = restore_portable(ctx, s.init.seed, outer, raw)
    else:
        state = restore_state(ctx, s.init.seed, outer, raw)
    part_mask(state.theta, s.worker.estimator.parts)  # θ from a file or a resumed run: its parts checked too
    write_json(run_dir / "config.json", config.to_dict())
    if portable is not None:
        warn_fresh_estimators(portable, s.plan.num_groups, s.plan.tasks_per_group)
        start_session(run_dir, portable)
    truncate_metrics(run_dir, state.step)
    held = s.tasks.held_out(all_specs(s.tasks)) if s.panel is not None and s.panel.on == "source" else None
    logs = RunLogs(run_dir, truncate_at=state.step if raw is not None else None)
    try:
        return _run(ctx, s, outer, state, backend, progress, max_seconds, run_dir, specs, eval_specs, raw, held,
                    logs)
    finally:
        logs.close()


def _run(ctx, s: RunSettings, outer, state, backend, progress, max_seconds, run_dir, specs, eval_specs, raw, held,
         logs) -> RunResult:
    """The run once its state is ready: the start, the outer loop, the end."""
    cadences = Cadences(run_dir, s, ctx, task_digest(specs), len(specs), eval_specs or [], resumed=raw is not None,
                        held_specs=held, logs=logs)
    if state.step == 0:
        cadences.at_start(state, progress)
    pool = backend
    if backend is None and s.pool.workers > 0 and local_ray_usable(s.pool.address):
        pool = RayGradientPool(s.worker, specs, s.pool.workers, address=s.pool.address, pin=s.pool.pin)
    try:
        reason = run_loop(ctx, s, outer, state, pool, cadences, progress, max_seconds)
    finally:
        if backend is None and pool is not None:
            pool.close()
    summary = cadences.at_end(state, reason, progress)
    return RunResult(state, run_dir, reason in ("SIGINT", "SIGTERM"), reason, summary)


def continue_source(run_dir: Path, raw: dict | None, portable: PortableState | None) -> PortableState | None:
    """Which start a run given a portable state continues from: the state (returned), or, when the run folder's
    own checkpoint ``raw`` is at least as far and its run continues the state (the state's session history is
    the start of the run's), that checkpoint (None returned; a note on stderr). ``ResumeError`` when the run
    folder holds another lineage or is behind the state (continue the state in a fresh folder)."""
    if portable is None or raw is None:
        return portable
    continues = read_run_history(run_dir)["sessions"][:len(portable.history)] == portable.history
    if not continues and finish_interrupted_export(run_dir, raw, portable):
        print(f"note: the export of {run_dir} into {portable.path} was stopped before it updated the run's history; "
              "finished it", file=sys.stderr)
        continues = True
    if not continues and int(raw["step"]) >= portable.step:  # another lineage that got as far: never replace it
        raise ResumeError(f"run {run_dir}: its run is not a continuation of the pretraining state {portable.path} "
                          f"(the state's {len(portable.history)} recorded sessions are not the run's first ones); "
                          "continue the state in a fresh folder (another --out, e.g. make pretrain "
                          "PRETRAIN_DIR=runs/pretrain2)")
    if int(raw["step"]) >= portable.step:
        print(f"note: {run_dir} holds this run at outer step {int(raw['step'])} (the pretraining state "
              f"{portable.path} is at {portable.step}); continuing the run folder's own checkpoint",
              file=sys.stderr)
        return None
    raise ResumeError(f"run {run_dir}: its checkpoint is at outer step {int(raw['step'])}, behind the pretraining "
                      f"state {portable.path} (step {portable.step}); continue the state in a fresh folder "
                      "(another --out, e.g. make pretrain PRETRAIN_DIR=runs/pretrain2, or --overwrite in place of "
                      "--resume)")


def source_labels(run_dir: Path, portable: PortableState | None) -> dict:
    """How the resume checks name a portable state, and what they advise instead (empty for a run folder)."""
    if portable is None:
        return {}
    return {"what": f"pretraining state {portable.path}",
            "restart_hint": f"continue it with its own settings ({portable.path / CONFIG_FILE}), or start a new "
                            f"run without --from-state"}


def all_specs(tasks: TaskSource) -> list:
    """Every spec of the source's file (the default suite when it names none), its plugins imported first."""
    import_plugins(tasks.plugins)
    return taskgen.load_specs(tasks.path)


def load_specs_for(tasks: TaskSource):
    """``(train_specs, eval_specs)``: the filtered specs and up to ``eval_tasks`` fixed held-out specs (the
    ``meta_test`` specs that pass the non-split filters; training specs when there are none)."""
    specs = all_specs(tasks)
    train = tasks.filter(specs)
    if not train:
        raise ValueError(tasks.no_specs_message(specs))
    held = tasks.held_out(specs)
    pool = sorted(held or train, key=lambda s: s.task_id)
    order = rng_for(tasks.seed, 0, "eval").permutation(len(pool))
    return train, [pool[i] for i in order[:tasks.eval_tasks]]


class Cadences:
    """What happens between outer steps, each on its own cadence (:class:`~lopt_trainer.meta.config.Cadence`):
    the held-out evaluation, the quality panel (:class:`~lopt_trainer.meta.run_panel.Panel`) and checkpoints."""

    def __init__(self, run_dir: Path, s: RunSettings, ctx: WorkerContext, tasks_digest: str, tasks_count: int,
                 eval_specs, resumed: bool, held_specs=None, logs=None):
        self.run_dir, self.cadence, self.ctx = run_dir, s.cadence, ctx
        self.logs = logs or (lambda record: None)
        self.config_json, self.tasks_digest, self.tasks_count = s.config_json, tasks_digest, tasks_count
        self.eval_tasks = [ctx.sampler.builder(spec) for spec in eval_specs]
        self.eval_seed = s.worker.seed
        self.panel = None
        if s.panel is not None and s.panel.on == "source" and not held_specs:
            print(f"note: no quality panel: {s.tasks.describe()} has no held-out (meta_test) task that passes the "
                  "run's other filters, so nothing says whether θ improves; give the source meta_test specs "
                  "(taskgen sample splits them) or set panel_every=0", file=sys.stderr)
        elif s.panel is not None:
            self.panel = Panel(s.panel, run_dir, ctx.lopt, resumed, held_specs, s.tasks.describe(), log=self.logs)
        self.write_npz = ctx.lopt is hierarchical_lopt()  # the reference layout fits its default sizes only

    def at_start(self, state: TrainerState, progress: bool) -> None:
        """Before the first outer step: the held-out check and the panel on the start θ (the step-0 points)."""
        if self.eval_tasks and self.cadence.eval_every > 0:
            self.held_out_check(state, start=True)
        if self.panel is not None:
            self.panel.keep_start(state, progress)
        if progress:
            judge = ("whether θ improves shows in the panel (step 0 against later steps) and the end summary"
                     if self.panel is not None else "this run has no panel (panel_every=0), so nothing in it "
                     "says whether θ improves")
            print(f"note: the meta-loss of the first steps falls as the inner problems train, whatever θ does; {judge}",
                  file=sys.stderr)

    def held_out_check(self, state: TrainerState, start: bool = False) -> None:
        """The quick held-out check of ``state.theta`` into the metrics (``step`` −1: the start θ)."""
        c = self.cadence
        res = evaluate(state.theta, self.eval_tasks, self.ctx.lopt, self.ctx.settings.unroll, c.eval_steps,
                       self.eval_seed)
        record = {"kind": "eval", "step": -1 if start else state.step - 1, "tasks": res}
        append_metrics(self.run_dir, record)
        self.logs(record)

    def at_end(self, state: TrainerState, reason: str, progress: bool) -> dict | None:
        """After the last step: the panel on the last θ (unless a signal stopped the run or it was just scored),
        then the end summary (:func:`~lopt_trainer.meta.run_panel.end_summary`) into the metrics and
        ``RUN/summary.json``; returns the summary (None without a panel)."""
        records = read_metrics(self.run_dir)
        record = {"stop_reason": reason, "stopped": STOP_REASONS[reason], "step": state.step, **time_spent(records)}
        if self.panel is None:
            write_json(self.run_dir / SUMMARY_FILE, record)
            return None
        panels = [r for r in records if r.get("kind") == "panel"]
        if reason in ("steps", "time") and (not panels or panels[-1]["step"] != state.step):
            if progress:
                print(f"panel: scoring the last θ (step {state.step}) for the end summary", file=sys.stderr)
            self.panel.evaluate(state, progress)
            panels = [r for r in read_metrics(self.run_dir) if r.get("kind") == "panel"]
        first = next((r for r in panels if r["step"] == 0), None)
        summary = end_summary(first, panels[-1] if panels else None, self.panel.best,
                              {t.task_id: t.spec.family for t in self.panel.tasks})
        record.update(panel=summary, panel_tasks=len(self.panel.tasks),
                      panel_on=self.panel.what or self.panel.settings.on or "suite",
                      panel_score="clipped_improvement" if self.panel.settings.on is None else "normalized_loss")
        append_metrics(self.run_dir, {"kind": "end", **record})
        write_json(self.run_dir / SUMMARY_FILE, record)
        return record

    def after_step(self, state: TrainerState, progress: bool, stop=None) -> None:
        """Run what is due after ``state.step`` outer steps; ``stop``: the run's :class:`_StopFlag`, with which a
        stop request ends a panel evaluation at once (a panel can take minutes; its finished tasks stay cached)."""
        c: Cadence = self.cadence
        if self.eval_tasks and c.eval_every > 0 and state.step % c.eval_every == 0:
            self.held_out_check(state)
        if self.panel is not None and state.step % c.panel_every == 0:
            try:
                self.panel.evaluate(state, progress, stop=stop)
            except StopRequested:
                print(f"stopped the panel of step {state.step} (its finished tasks are cached)", file=sys.stderr)
        if c.checkpoint_every > 0 and state.step % c.checkpoint_every == 0:
            self.save(state)

    def save(self, state: TrainerState) -> None:
        """Checkpoint ``state``; for the hierarchical optimizer also write its θ as ``RUN/theta.npz`` (reference
        layout, atomic), the file any other tool reads."""
        save_state(self.run_dir, state, self.config_json, self.tasks_digest, self.tasks_count)
        if self.write_npz:
            save_reference_npz(jax.device_get(state.theta), self.run_dir / THETA_FILE)


def time_spent(records) -> dict:
    """Where a run's time went, from its metrics records: ``{"step_seconds", "compile_seconds", "panel_seconds"}``
    (outer steps in all, the part of them spent compiling new programs, the panel evaluations)."""
    steps = [r for r in records if r.get("kind") == "step"]
    return {"step_seconds": float(sum(r.get("step_seconds") or 0.0 for r in steps)),
            "compile_seconds": float(sum(r.get("compile_seconds") or 0.0 for r in steps)),
            "panel_seconds": float(sum(r.get("seconds") or 0.0 for r in records if r.get("kind") == "panel"))}


def run_loop(ctx: WorkerContext, s: RunSettings, outer, state: TrainerState, pool, cadences: Cadences,
             progress: bool, max_seconds: float | None = None) -> str:
    """Outer steps until ``s.cadence.steps`` (or a SIGINT/SIGTERM, or the step during which ``max_seconds`` of the
    loop passed), each logged and followed by its cadences, then a final checkpoint. Returns why it stopped (a key
    of :data:`STOP_REASONS`)."""
    deadline = None if max_seconds is None else time.monotonic() + float(max_seconds)
    flag = _StopFlag()
    old = _install_handlers(flag)
    bar = progress_bar(s.cadence.steps, "meta-train", initial=state.step) if progress else None
    on_work = WorkDisplay(bar) if bar is not None else None
    reason = "steps"
    try:
        while state.step < s.cadence.steps and flag.signum is None:
            record = train_step(ctx, s.plan, outer, state, pool, on_work=on_work, end_step=s.cadence.steps)
            append_metrics(cadences.run_dir, record)
            cadences.logs(record)
            if bar is not None:
                bar.set_description("meta-train", refresh=False)
                bar.update(1)
                loss = record["meta_loss"]
                bar.set_postfix(loss="-" if loss is None else f"{loss:.3f}", sps=f"{record['inner_steps_per_s']:.0f}",
                                refresh=False)
            cadences.after_step(state, progress, stop=flag)
            if deadline is not None and time.monotonic() >= deadline:
                reason = "time" if state.step < s.cadence.steps else "steps"
                break
        cadences.save(state)
    finally:
        PROGRAMS.cancel_pending()  # foreseen groups of steps that will not run
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if bar is not None:
            bar.close()
    return signal.Signals(flag.signum).name if flag.signum is not None else reason  # SIGINT or SIGTERM


class WorkDisplay:
    """Shows on the progress bar which estimator of the step runs, and that a group seen for the first time in
    this process compiles its program (a cold first step compiles for a minute): ``compiling mlp:… (3/16)``."""

    def __init__(self, bar):
        self.bar, self.seen = bar, set()
        self.live = bool(getattr(getattr(bar, "fp", None), "isatty", lambda: False)())  # a terminal shows it now

    def __call__(self, i: int, n: int, work) -> None:
        key = (work.group, len(work.task_ids))
        doing = "compiling" if key not in self.seen else "estimator"
        self.seen.add(key)
        self.bar.set_description(f"meta-train: {doing} {_short_group(work.group)} ({i + 1}/{n})", refresh=self.live)


def _short_group(group: str, limit: int = 28) -> str:
    return group if len(group) <= limit else group[:limit - 1] + "…"


class StopRequested(BaseException):
    """A SIGINT/SIGTERM during work the run may drop (a panel evaluation): the run checkpoints and stops. A
    ``BaseException``, like ``KeyboardInterrupt``, so that no ``except Exception`` on the way swallows it."""


class _StopFlag:
    """Set by SIGINT/SIGTERM: the loop checkpoints and stops after the current step (a step can take a minute when
    it compiles). Inside :meth:`interruptible` work (a panel evaluation, minutes) the first signal ends that work at
    once (:class:`StopRequested`), so the checkpoint follows within a scheduler's grace period. A second signal
    stops at once (``KeyboardInterrupt``): the run then continues from its last checkpoint."""

    def __init__(self):
        self.signum = None
        self._interruptible = False

    @contextlib.contextmanager
    def interruptible(self):
        """Work inside this block is dropped at the first signal (or at once if one came before)."""
        if self.signum is not None:
            raise StopRequested
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False

    def __call__(self, signum, frame):
        del frame
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        if self._interruptible:
            self._interruptible = False
            print("\nstopping: the panel evaluation is dropped, then a checkpoint", file=sys.stderr)
            raise StopRequested
        print("\nstopping after this outer step, with a checkpoint; a second Ctrl-C stops at once (the run then "
              "continues from its last checkpoint)", file=sys.stderr)


def _install_handlers(flag):
    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old[sig] = signal.signal(sig, flag)
        except ValueError:  # not the main thread
            pass
    return old
