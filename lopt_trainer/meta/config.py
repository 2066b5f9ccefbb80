"""Every setting of a meta-training run, as one JSON-able dataclass (written to ``RUN/config.json``), and the
narrow settings objects the run passes down.

The settings of a run are assembled once, here: built-in defaults < a config file < ``--set key=value`` < flags
(:func:`resolve_config`; unknown keys and values of the wrong type are errors naming the setting, so typos do not
pass silently). :meth:`MetaTrainConfig.split` then turns the flat config into one small frozen object per part of
the run (:class:`RunSettings`), and each function of :mod:`lopt_trainer.meta` receives only the part it uses.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from pathlib import Path
from typing import Any

from families.errors import short_repr
from lopt_trainer.common.task_pool import check_family_limits, filter_specs, no_specs_message
from lopt_trainer.evaluation.panel import PanelSettings
from lopt_trainer.meta.estimators import DIFFERENCES, KINDS, EstimatorSettings
from lopt_trainer.meta.truncation import HorizonSchedule, UnrollSettings
from lopt_trainer.theta.shipped import data_path
from taskgen.limits import INT64_MAX, INT64_MIN, SEED_LIMIT
from taskgen.specfile import read_file_bytes


RESUME_KINDS = {
    "free": "taken from the command line on resume (where, how fast, how long)",
    "safe": "may change on resume with --allow-change (logging, evaluation, caching)",
    "fixed": "never changes mid-run (it would make another experiment)",
    "tasks": "never changes mid-run: it chooses the training task list",
}
"""What a resumed run may do with a setting (each field's ``resume``; :mod:`lopt_trainer.meta.resume`)."""


def setting(default=dataclasses.MISSING, *, factory=dataclasses.MISSING, help: str, resume: str,  # noqa: A002
            minimum=None, choices: tuple = ()):
    """A :class:`MetaTrainConfig` field declared once: its default and everything said about it.

    Args:
      default: the default value (or ``factory`` for a mutable one).
      factory: makes the default (a dict or list).
      help: one line on what the setting does (``taskgen lopt settings``, the docs table).
      resume: one of :data:`RESUME_KINDS`.
      minimum: the least value of a number (``">0"``: strictly positive).
      choices: the values a setting of a few takes.

    Returns:
      The ``dataclasses.field``.

    Raises:
      ValueError: an unknown ``resume`` kind or an empty ``help``.
    """
    if resume not in RESUME_KINDS or not help:
        raise ValueError(f"a setting needs help text and a resume kind of {sorted(RESUME_KINDS)}")
    metadata = {"help": help, "resume": resume, "minimum": minimum, "choices": tuple(choices)}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class MetaTrainConfig:
    """Every setting of a meta-training run, each declared once with its default, help, range or choices and
    resume kind (:func:`setting`): ``taskgen lopt settings`` prints them, ``docs/meta_training.md`` holds the
    generated table, :mod:`lopt_trainer.meta.resume` takes its rules from them.

    Groups, in field order: tasks (``manifest`` … ``plugins``; a spec file of one's own with the recipe:
    :func:`own_source`), the learned optimizer (``lopt``, ``init_theta``), the estimator (``estimator`` …
    ``valid_split``; :mod:`lopt_trainer.meta.estimators`, :mod:`lopt_trainer.meta.truncation`), the outer
    optimizer (``outer_opt`` … ``family_draw``; :func:`lopt_trainer.meta.outer.combine_estimates`,
    :func:`lopt_trainer.meta.plan.family_for`), where θ starts (``theta_init``), the quality panel (``panel_every``,
    ``panel``; :mod:`lopt_trainer.evaluation.panel`) and the run (``seed`` … ``prefetch_steps``).
    ``MetaTrainConfig()`` is the ``quick`` preset; :meth:`preset` gives the others.
    """

    manifest: str | None = setting(None, resume="tasks",
        help="Arrow/Parquet manifest to draw tasks from (or suite; both empty: the default suite).")
    suite: str | None = setting(None, resume="tasks", help="Spec file (JSON Lines) to draw tasks from.")
    filters: dict = setting(factory=lambda: {"split": ["meta_train"]}, resume="tasks",
        help="{column: [values]} over family, split, dataset, variant, task_id.")
    max_params: int | None = setting(None, resume="tasks", minimum=0,
        help="Largest task in parameters (null: no limit).")
    max_flops: int | None = setting(None, resume="tasks", minimum=0,
        help="Largest task in FLOPs per step (null: no limit).")
    family_limits: dict = setting(factory=lambda: {}, resume="tasks",
        help="{family: {max_params, max_flops}}: a family's own cost limits in place of the global ones.")
    plugins: list = setting(factory=lambda: [], resume="safe",
        help="Modules imported first (user families), in this process and every worker.")
    lopt: str = setting("hierarchical", resume="fixed", choices=("hierarchical", "module:factory"),
        help="The learned optimizer: the paper's hierarchical one, or a user's module:factory.")
    init_theta: str | None = setting(None, resume="fixed",
        help="θ to start from (run folder, checkpoint, .npz, a θ name): a warm start; null: theta_init.")
    estimator: str = setting("pes", resume="fixed", choices=KINDS,
        help="Meta-gradient estimator (lopt_trainer.meta.estimators).")
    sigma: float = setting(0.01, resume="fixed", minimum=">0",
        help="Standard deviation of the ES/PES perturbation of θ.")
    bp_clip: float = setting(10.0, resume="fixed", minimum=">0",
        help="Global-norm clip of each slot's backpropagated meta-gradient.")
    loss_difference: str = setting("value", resume="fixed", choices=DIFFERENCES,
        help="How a slot's antithetic loss difference L+ - L- enters its ES/PES estimate: value, or sign only.")
    train_parts: list | None = setting(None, resume="fixed",
        help='Top-level parts of θ that meta-training perturbs and changes (e.g. ["mlp"]); the rest stays fixed. '
             "null: all of θ.")
    truncation: int = setting(50, resume="fixed", minimum=1,
        help="Inner steps per truncation (one meta-gradient estimate each).")
    num_groups: int = setting(1, resume="fixed", minimum=1,
        help="Estimators per outer step, each on its own group of tasks.")
    tasks_per_group: int = setting(8, resume="fixed", minimum=1, help="Vmapped inner problems (slots) per estimator.")
    resample_every: int = setting(100, resume="fixed", minimum=1,
        help="Outer steps before an estimator draws a new group.")
    horizon: str = setting("log_uniform", resume="fixed", choices=("log_uniform", "constant"),
        help="How each inner problem's length is drawn.")
    horizon_min: int = setting(100, resume="fixed", minimum=1, help="Shortest inner problem (steps).")
    horizon_max: int = setting(1000, resume="fixed", minimum=1, help="Longest inner problem (steps).")
    horizon_final_min: int | None = setting(None, resume="fixed", minimum=1,
        help="horizon_min at the end of horizon_anneal_steps (null: unchanged).")
    horizon_final_max: int | None = setting(None, resume="fixed", minimum=1,
        help="horizon_max at the end of horizon_anneal_steps (null: unchanged).")
    horizon_anneal_steps: int = setting(0, resume="fixed", minimum=0,
        help="Outer steps of a linear change of the horizon bounds (0: none).")
    random_offsets: bool = setting(True, resume="fixed", help="Start each slot at a random point of its first horizon.")
    meta_loss: str = setting("train", resume="fixed", choices=("train", "outer_valid"),
        help="Which loss a truncation's meta-loss averages.")
    loss_scale: str = setting("none", resume="fixed", choices=("none", "initial"),
        help="initial: each problem's meta-loss divided by its initial loss (at least scale_floor).")
    scale_floor: float = setting(0.5, resume="fixed", minimum=">0", help="Least divisor of loss_scale=initial.")
    meta_loss_from: int = setting(0, resume="fixed", minimum=0,
        help="Inner steps before this one train but do not count in the meta-loss.")
    loss_clip: float = setting(20.0, resume="fixed", minimum=">0",
        help="Cap of a step's meta-loss, and the score of a diverged step.")
    valid_every: int = setting(10, resume="fixed", minimum=0,
        help="Inner steps between validation losses fed to the optimizer (0: never).")
    valid_split: str = setting("inner_valid", resume="fixed", choices=("inner_valid", "outer_valid"),
        help="The split those validation losses come from.")
    outer_opt: str = setting("adam", resume="fixed", choices=("adam", "sgd", "lopt:THETA"),
        help="The outer optimizer (lopt:THETA: a learned optimizer trains this one).")
    outer_lr: float = setting(1e-4, resume="fixed", minimum=">0", help="Outer learning rate.")
    outer_clip: float = setting(3.0, resume="fixed", minimum=0, help="Global-norm clip of the meta-gradient (0: none).")
    outer_clip_value: float = setting(0.0, resume="fixed", minimum=0,
        help="Element-wise clip of the meta-gradient (0: none; the paper's 0.1).")
    outer_warmup: int = setting(0, resume="fixed", minimum=0,
        help="Outer steps of a linear learning-rate warm-up from 0.")
    grad_combine: str = setting("mean", resume="fixed", choices=("mean", "unit"),
        help="How estimators' meta-gradients combine: their mean, or their unit directions at the mean's scale.")
    family_draw: str = setting("uniform", resume="fixed", choices=("uniform", "stratified"),
        help="How a group draw picks its family (stratified: every step holds every family).")
    theta_init: str = setting("auto", resume="fixed", choices=("auto", "handset", "random"),
        help="Where θ starts without init_theta (auto: handset when the optimizer has one).")
    panel_every: int = setting(0, resume="safe", minimum=0,
        help="Outer steps between panel evaluations of θ on held-out tasks (0: never).")
    panel: dict = setting(
        factory=lambda: {}, resume="safe",
        help='Panel settings (lopt_trainer.evaluation.panel.PanelSettings), e.g. {"on": "valid"} or {"on": "source"}.')
    seed: int = setting(0, resume="fixed", minimum=0, help="Seed of every random choice of the run.")
    steps: int = setting(1000, resume="free", minimum=1, help="Outer steps in all (a resumed run may raise it).")
    checkpoint_every: int = setting(50, resume="safe", minimum=0,
        help="Outer steps between checkpoints (0: only at the end).")
    eval_every: int = setting(50, resume="safe", minimum=0,
        help="Outer steps between quick held-out checks (0: never).")
    eval_tasks: int = setting(3, resume="safe", minimum=0, help="Held-out tasks of the quick check.")
    eval_steps: int = setting(200, resume="safe", minimum=0, help="Inner steps of each quick check run.")
    workers: int = setting(0, resume="free", minimum=0, help="Ray gradient workers (0: in process).")
    address: str | None = setting(None, resume="free", help="Ray cluster address (null: a local cluster).")
    pin_workers: bool = setting(False, resume="free", help="Pin local Ray workers one per core.")
    compilation_cache: str | None = setting(None, resume="safe",
        help="Persistent compilation cache folder (null: $TASKGEN_JAX_CACHE or ~/.cache/taskgen/jax; \"\": off).")
    prefetch_steps: int = setting(8, resume="free", minimum=0,
        help="Compile the programs of groups drawn within this many outer steps in the background (0: off).")

    def estimator_settings(self) -> EstimatorSettings:
        """The hashable estimator settings of this config."""
        return EstimatorSettings(
            kind=self.estimator, sigma=float(self.sigma), bp_clip=float(self.bp_clip),
            difference=self.loss_difference, parts=None if self.train_parts is None else tuple(self.train_parts),
            unroll=UnrollSettings(truncation=int(self.truncation), meta_loss=self.meta_loss,
                                  loss_clip=float(self.loss_clip), valid_every=int(self.valid_every),
                                  valid_split=self.valid_split, loss_scale=self.loss_scale,
                                  scale_floor=float(self.scale_floor),
                                  meta_loss_from=int(self.meta_loss_from)))

    def horizon_schedule(self) -> HorizonSchedule:
        """The horizon schedule of this config."""
        return HorizonSchedule(self.horizon, int(self.horizon_min), int(self.horizon_max),
                               self.horizon_final_min, self.horizon_final_max, int(self.horizon_anneal_steps))

    def split(self) -> "RunSettings":
        """The narrow settings of each part of the run (see :class:`RunSettings`)."""
        seed = int(self.seed)
        return RunSettings(
            tasks=TaskSource(self.manifest, self.suite, dict(self.filters), self.max_params, self.max_flops,
                             tuple(self.plugins), int(self.eval_tasks), seed,
                             check_family_limits(self.family_limits)),
            worker=WorkerSettings(self.lopt, self.estimator_settings(), seed, tuple(self.plugins),
                                  self.compilation_cache),
            plan=PlanSettings(int(self.num_groups), int(self.tasks_per_group), int(self.resample_every),
                              self.horizon_schedule(), bool(self.random_offsets), seed, int(self.prefetch_steps),
                              self.grad_combine, self.family_draw),
            outer=OuterSettings(self.outer_opt, float(self.outer_lr), float(self.outer_clip),
                                float(self.outer_clip_value), int(self.outer_warmup),
                                None if self.train_parts is None else tuple(self.train_parts)),
            init=InitSettings(self.theta_init, self.init_theta, seed),
            cadence=Cadence(int(self.steps), int(self.checkpoint_every), int(self.eval_every),
                            int(self.eval_steps), int(self.panel_every)),
            panel=PanelSettings.from_dict(self.panel) if self.panel_every > 0 else None,
            pool=PoolSettings(int(self.workers), self.address, bool(self.pin_workers)),
            config_json=self.to_json())

    @classmethod
    def preset(cls, name: str = "recipe", **settings) -> "MetaTrainConfig":
        """The settings of preset ``name`` (:data:`PRESETS`) with ``settings`` on top, by the command line's rule.

        Args:
          name: ``recipe`` (what ``taskgen lopt meta-train`` starts from) or ``quick`` (``MetaTrainConfig()``).
          **settings: fields to set, e.g. ``suite="mine.jsonl"`` (with the recipe, a spec file of one's own
            trains on its ``meta_train`` specs and is judged on its ``meta_test`` specs: :func:`own_source`).

        Returns:
          The config.

        Raises:
          ValueError: an unknown preset, setting or value.
        """
        return resolve_config(flags=settings, preset=name)[0]

    def to_dict(self) -> dict:
        """All settings as a JSON-able dict."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Canonical JSON of :meth:`to_dict` (sorted keys, indented)."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=1)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MetaTrainConfig":
        """A config from a dict (a config file, ``--set`` items, a checkpoint's config). Unknown keys, values of the
        wrong type and values out of range raise ``ValueError`` naming the setting, its type and the value
        (:func:`check_setting`)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown meta-train settings {unknown}; known: {sorted(names)}")
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        for name, value in data.items():
            check_setting(name, types[name], value)
        cfg = cls(**data)
        cfg.family_limits = check_family_limits(cfg.family_limits)
        cfg.estimator_settings()  # validates estimator kind, sigma and the unroll settings
        if cfg.grad_combine not in SETTING_CHOICES["grad_combine"]:
            raise ValueError(f"meta-train setting grad_combine must be one of "
                             f"{list(SETTING_CHOICES['grad_combine'])}, got {cfg.grad_combine!r}")
        if cfg.family_draw not in SETTING_CHOICES["family_draw"]:
            raise ValueError(f"meta-train setting family_draw must be one of "
                             f"{list(SETTING_CHOICES['family_draw'])}, got {cfg.family_draw!r}")
        if cfg.theta_init not in ("auto", "random", "handset"):
            raise ValueError(f"unknown theta_init {cfg.theta_init!r}; use 'auto', 'random' or 'handset'")
        longest = max(cfg.horizon_max, cfg.horizon_final_max or 0)
        if cfg.meta_loss_from >= longest:
            raise ValueError(f"meta-train setting meta_loss_from={cfg.meta_loss_from} is not below the longest "
                             f"horizon ({longest} steps): no step would count in the meta-loss")
        return cfg


SETTING_CHOICES = {f.name: f.metadata["choices"] for f in dataclasses.fields(MetaTrainConfig) if f.metadata["choices"]}
"""The values of each setting that takes one of a few (``THETA``: any name of :mod:`lopt_trainer.theta.names`;
``module:factory``: a user's learned optimizer), from the fields' declarations."""

SETTING_MINIMUM = {f.name: f.metadata["minimum"] for f in dataclasses.fields(MetaTrainConfig)
                   if f.metadata["minimum"] is not None}
"""The least value of each numeric setting (``">0"``: strictly positive), from the fields' declarations; integers
also fit int64, seeds 32 bits."""

_TYPE_TEXT = {"int": "an integer", "float": "a finite number", "str": "a string", "bool": "true or false",
              "dict": "an object ({...})", "list": "a list ([...])", "None": "null"}


def check_setting(name: str, annotation: str, value) -> None:
    """Raise ``ValueError`` unless ``value`` fits the setting ``name`` of type ``annotation`` (the field's
    annotation text, e.g. ``"int | None"``): integers are JSON integers only (not ``8.0``, not ``true``) that fit
    int64 (seeds: ``0 <= seed < 2**32``), floats finite numbers, strings, booleans, objects and lists their JSON
    kinds, and numbers at least their :data:`SETTING_MINIMUM`. The message names the setting, its type and the
    value."""
    kinds = [k.strip() for k in str(annotation).split("|")]
    expected = " or ".join(_TYPE_TEXT.get(k, k) for k in kinds)
    if value is None and "None" in kinds:
        return
    is_int = isinstance(value, int) and not isinstance(value, bool)
    ok = (("int" in kinds and is_int) or ("str" in kinds and isinstance(value, str))
          or ("float" in kinds and (is_int or (isinstance(value, float) and math.isfinite(value))))
          or ("bool" in kinds and isinstance(value, bool)) or ("dict" in kinds and isinstance(value, dict))
          or ("list" in kinds and isinstance(value, (list, tuple))))
    if not ok:
        raise ValueError(f"meta-train setting {name} must be {expected}, got {short_repr(value)}")
    if not (is_int or isinstance(value, float)):
        return
    if is_int and not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"meta-train setting {name} must be {expected} that fits 64 bits, got {short_repr(value)}")
    if name == "seed" and value >= SEED_LIMIT:
        raise ValueError(f"meta-train setting seed must be below 2**32, got {short_repr(value)}")
    least = SETTING_MINIMUM.get(name)
    if least == ">0" and not value > 0:
        raise ValueError(f"meta-train setting {name} must be {expected} > 0, got {short_repr(value)}")
    if isinstance(least, int) and value < least:
        raise ValueError(f"meta-train setting {name} must be {expected} >= {least}, got {short_repr(value)}")


# ------------------------------------------------------------------------------------ the narrow settings


@dataclasses.dataclass(frozen=True)
class TaskSource:
    """Which specs a run trains on (``manifest`` or ``suite``, ``filters``, cost limits: the global
    ``max_params`` / ``max_flops`` and the per-family ``family_limits`` over them, ``plugins`` to import first) and
    how many fixed held-out tasks it evaluates (``eval_tasks``, drawn with ``seed``)."""

    manifest: str | None
    suite: str | None
    filters: dict
    max_params: int | None
    max_flops: int | None
    plugins: tuple
    eval_tasks: int
    seed: int
    family_limits: dict = dataclasses.field(default_factory=dict)

    def filter(self, specs) -> list:
        """The specs of ``specs`` this source trains on (filters and cost limits, see
        :func:`~lopt_trainer.common.task_pool.filter_specs`)."""
        return filter_specs(specs, self.filters, self.max_params, self.max_flops, family_limits=self.family_limits)

    def held_out(self, specs) -> list:
        """The ``meta_test`` specs of ``specs`` that pass every other filter and the cost limits."""
        other = {k: v for k, v in self.filters.items() if k != "split"}
        return filter_specs(specs, {**other, "split": ["meta_test"]}, self.max_params, self.max_flops,
                            family_limits=self.family_limits)

    def no_specs_message(self, specs) -> str:
        """The error when :meth:`filter` leaves nothing (each filter with the count it left)."""
        return no_specs_message(self.describe(), specs, self.filters, self.max_params, self.max_flops,
                                self.family_limits)

    @property
    def path(self) -> str | None:
        """The spec file or manifest (None: the default suite)."""
        return self.manifest or self.suite

    def describe(self) -> str:
        """The source as a message names it."""
        return self.path or "the default suite"


@dataclasses.dataclass(frozen=True)
class WorkerSettings:
    """What computing an estimator's work needs (in process or in a Ray worker): the learned optimizer's name,
    the estimator settings, the run's seed, user modules to import and the compilation cache setting."""

    lopt: str
    estimator: EstimatorSettings
    seed: int
    plugins: tuple = ()
    compilation_cache: str | None = None

    def to_dict(self) -> dict:
        """JSON-able form (sent to Ray workers)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "WorkerSettings":
        """Inverse of :meth:`to_dict`."""
        est = d["estimator"]
        parts = est.get("parts")
        estimator = EstimatorSettings(est["kind"], est["sigma"], UnrollSettings(**est["unroll"]), est["bp_clip"],
                                      est.get("difference", "value"), tuple(parts) if parts else None)
        return cls(d["lopt"], estimator, int(d["seed"]), tuple(d["plugins"]), d["compilation_cache"])


@dataclasses.dataclass(frozen=True)
class PlanSettings:
    """How estimators hold tasks: ``num_groups`` estimators of ``tasks_per_group`` slots, groups redrawn after
    ``resample_every`` outer steps, horizons from ``horizons`` (with random initial offsets), draws from ``seed``;
    the programs of groups drawn within ``prefetch_steps`` steps compile ahead (0 = no look-ahead); the step combines
    its estimators' gradients by ``grad_combine`` (:func:`lopt_trainer.meta.outer.combine_estimates`); a group draw
    picks its family by ``family_draw`` (:func:`lopt_trainer.meta.plan.family_for`)."""

    num_groups: int
    tasks_per_group: int
    resample_every: int
    horizons: HorizonSchedule
    random_offsets: bool
    seed: int
    prefetch_steps: int = 0
    grad_combine: str = "mean"
    family_draw: str = "uniform"


@dataclasses.dataclass(frozen=True)
class OuterSettings:
    """The outer optimizer: ``name`` ("adam", "sgd" or "lopt:PATH"), learning rate, global-norm clip,
    element-wise clip and warm-up steps (0 = none for each), and the parts of θ it may change (None: all)."""

    name: str
    lr: float
    clip: float
    clip_value: float
    warmup: int
    parts: tuple | None = None


@dataclasses.dataclass(frozen=True)
class InitSettings:
    """Where θ starts: ``theta_init`` ("auto", "handset" or "random") from ``seed``, or the θ at ``init_theta``."""

    theta_init: str
    init_theta: str | None
    seed: int


@dataclasses.dataclass(frozen=True)
class Cadence:
    """How long the run goes (``steps``) and every how many outer steps it checkpoints, evaluates its held-out
    tasks (``eval_steps`` inner steps each) and scores θ on the panel (0 = never)."""

    steps: int
    checkpoint_every: int
    eval_every: int
    eval_steps: int
    panel_every: int


@dataclasses.dataclass(frozen=True)
class PoolSettings:
    """Ray gradient workers: how many (0 = in process), the cluster (None = a local one) and core pinning."""

    workers: int
    address: str | None
    pin: bool


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """A run's settings, one narrow object per part (:meth:`MetaTrainConfig.split`); ``config_json`` is the
    full config as stored in ``RUN/config.json`` and in checkpoints."""

    tasks: TaskSource
    worker: WorkerSettings
    plan: PlanSettings
    outer: OuterSettings
    init: InitSettings
    cadence: Cadence
    panel: PanelSettings | None
    pool: PoolSettings
    config_json: str


# ------------------------------------------------------------------------------------ reading settings


def read_config_dict(path) -> dict:
    """The settings a config file (``.json`` or ``.toml``) sets, as a dict (not yet validated)."""
    path = Path(path)
    text = read_file_bytes(path).decode()
    if path.suffix == ".toml":
        return tomllib.loads(text)
    return json.loads(text)


def load_config(path) -> MetaTrainConfig:
    """Read a config file (``.json`` or ``.toml``)."""
    return MetaTrainConfig.from_dict(read_config_dict(path))


def parse_sets(items) -> dict:
    """``["sigma=0.03", "filters={\"family\": [\"mlp\"]}"]`` → ``{"sigma": 0.03, "filters": {...}}``: each
    value parsed as JSON, else kept as text; ``ValueError`` for an item without ``=`` and for ``NaN`` /
    ``Infinity`` anywhere in a value (JSON has no such numbers; Python's reader would take them)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set {item!r} must look like key=value")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(value, parse_constant=_refuse_constant)
        except _NonFinite as e:
            try:
                json.loads(value)  # JSON but for the constant (refused), or text that starts like one (kept)?
            except json.JSONDecodeError:
                out[key.strip()] = value
                continue
            raise ValueError(f"--set {short_repr(item)}: {e} is not a finite number (NaN and Infinity are "
                             "refused)") from None
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


class _NonFinite(Exception):
    """``NaN`` / ``Infinity`` / ``-Infinity`` met while reading a ``--set`` value."""


def _refuse_constant(name: str):
    raise _NonFinite(name)


PRESETS = {"recipe": "pretrain_config.json", "quick": None}
"""Named starting points of a run's settings: ``recipe`` — the pretraining recipe of the shipped θ
(``lopt_trainer/data/pretrain_config.json``: 16 estimators × 2 tasks of 12 families, outer-valid meta-loss,
initial-loss scaling, the quality panel every 150 steps); ``quick`` — the :class:`MetaTrainConfig` defaults (one
group of 8 slots, train meta-loss, no scaling, no panel: a small, fast run)."""


def preset_dict(name: str) -> dict:
    """The settings of preset ``name`` (see :data:`PRESETS`) as a full dict; ``ValueError`` for another name."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; use one of {sorted(PRESETS)}")
    base = MetaTrainConfig().to_dict()
    if PRESETS[name]:
        base.update(read_config_dict(data_path(PRESETS[name])))
    return MetaTrainConfig.from_dict(base).to_dict()


def describe_settings() -> list[dict]:
    """Every setting of :class:`MetaTrainConfig`: ``name``, ``type`` (annotation text), ``default`` (the Python
    default), one entry per preset (its value), ``minimum`` (:data:`SETTING_MINIMUM`; ``">0"``: strictly positive),
    ``maximum`` (seeds: 32 bits; other integers fit int64), ``choices`` (:data:`SETTING_CHOICES`), ``help`` and
    ``resume`` (:data:`RESUME_KINDS`), all from the fields' declarations; what ``taskgen lopt settings`` prints."""
    presets = {name: preset_dict(name) for name in PRESETS}
    default = MetaTrainConfig().to_dict()
    return [{"name": f.name, "type": str(f.type), "default": default[f.name],
             **{f"preset_{p}": values[f.name] for p, values in presets.items()},
             "minimum": SETTING_MINIMUM.get(f.name), "maximum": SEED_LIMIT - 1 if f.name == "seed" else None,
             "choices": list(SETTING_CHOICES.get(f.name, ())), "help": f.metadata["help"],
             "resume": f.metadata["resume"]}
            for f in dataclasses.fields(MetaTrainConfig)]


SETTINGS_TABLE_START = "<!-- settings table: generated by lopt_trainer.meta.config.settings_markdown -->"
SETTINGS_TABLE_END = "<!-- end of the settings table -->"


def settings_markdown() -> str:
    """The settings as the Markdown table of ``docs/meta_training.md`` (between :data:`SETTINGS_TABLE_START` and
    :data:`SETTINGS_TABLE_END`; a test keeps the page equal to this)."""
    def cell(value) -> str:
        return "`" + json.dumps(value, sort_keys=True).replace("|", "\\|") + "`"

    rows = ["| setting | default (quick) | recipe | range / choices | resume | what it does |",
            "|---|---|---|---|---|---|"]
    for r in describe_settings():
        rng = (" \\| ".join(r["choices"]) if r["choices"]
               else {None: "", ">0": "> 0"}.get(r["minimum"], f"≥ {r['minimum']}"))
        recipe = "=" if r["preset_recipe"] == r["default"] else cell(r["preset_recipe"])
        rows.append(f"| `{r['name']}` | {cell(r['default'])} | {recipe} | {rng} | {r['resume']} | {r['help']} |")
    return "\n".join([SETTINGS_TABLE_START, *rows, SETTINGS_TABLE_END])


def differences(config: MetaTrainConfig, reference: MetaTrainConfig | None = None) -> dict:
    """The settings of ``config`` that differ from ``reference`` (default: the Python defaults), in field order."""
    ref = (reference or MetaTrainConfig()).to_dict()
    return {k: v for k, v in config.to_dict().items() if v != ref[k]}


def resolve_config(config_file=None, sets=(), flags: dict | None = None,
                   preset: str | None = None) -> tuple[MetaTrainConfig, set]:
    """The config of a run from its sources, in rising precedence: the preset ``preset`` (:data:`PRESETS`; None:
    the Python defaults), the file ``config_file`` (``.json`` / ``.toml``, or None), the ``--set`` items ``sets``
    (see :func:`parse_sets`) and ``flags`` (setting → value; None values are not given; ``plugins`` add to the
    file's). Returns ``(config, the names the user gave)``: a resumed run checks exactly those against its stored
    settings (a preset's values are not given). ``ValueError`` / ``TypeError`` name a bad key or value."""
    cfg = preset_dict(preset) if preset else MetaTrainConfig().to_dict()
    if config_file:
        cfg.update(read_config_dict(config_file))
        cfg = MetaTrainConfig.from_dict(cfg).to_dict()
    given = set(read_config_dict(config_file)) if config_file else set()
    overrides = parse_sets(sets)
    cfg.update(overrides)
    given.update(overrides)
    for key, value in (flags or {}).items():
        if value is None or value == () or value == []:
            continue
        cfg[key] = list(cfg.get("plugins") or []) + list(value) if key == "plugins" else value
        given.add(key)
    if preset == "recipe":
        own_source(cfg, given)
    return MetaTrainConfig.from_dict(cfg), given


RECIPE_SOURCE_KEYS = ("filters", "max_params", "max_flops", "family_limits")
"""The recipe's settings that describe its own task distribution (the built-in families under its limits)."""


def own_source(cfg: dict, given: set) -> None:
    """The one rule for a run of the recipe on the user's own tasks, applied to ``cfg`` in place.

    When ``given`` names a spec file (``suite`` / ``manifest``), the recipe's description of its own distribution
    (:data:`RECIPE_SOURCE_KEYS`: the 12 built-in families and their cost limits) steps aside for every key not
    given too: the run trains on the file's ``meta_train`` specs, whatever their family and size. When ``given``
    names any task setting (a file, filters or limits) and not ``panel``, the panel judges θ on the held-out
    (``meta_test``) tasks of that same source (``{"on": "source"}``) instead of the yardstick's valid set of the
    built-in distribution.

    Args:
      cfg: the settings being resolved (a full :meth:`MetaTrainConfig.to_dict`).
      given: the names the user gave.
    """
    defaults = MetaTrainConfig().to_dict()
    if given & {"suite", "manifest"}:
        for key in RECIPE_SOURCE_KEYS:
            if key not in given:
                cfg[key] = defaults[key]
    if given & {"suite", "manifest", *RECIPE_SOURCE_KEYS} and "panel" not in given:
        cfg["panel"] = {"on": "source"}
