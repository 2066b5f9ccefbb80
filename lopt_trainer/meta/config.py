"""Every setting of a meta-training run, as one JSON-able dataclass (written to ``RUN/config.json``).

Load one from JSON or TOML with :func:`load_config`; unknown keys are errors (so typos do not pass silently).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from lopt_trainer.meta.estimators import EstimatorSettings
from lopt_trainer.meta.truncation import HorizonSchedule, UnrollSettings


@dataclasses.dataclass
class MetaTrainConfig:
    """Settings of a meta-training run (defaults in brackets).

    Tasks: ``manifest`` or ``suite`` (a spec file; default suite when both are empty), ``filters``
    (``{column: [values]}`` over ``family``, ``split``, ``dataset``, ``variant``, ``task_id``), ``max_params``,
    ``max_flops``, ``plugins`` (modules imported first, e.g. to register user families).
    Learned optimizer: ``lopt`` ["hierarchical" or "module:factory"], ``init_theta`` [None = ``lopt.init(seed)``;
    else the θ to start from: a run folder, a checkpoint or a reference ``.npz`` — a warm start, e.g. to fine-tune
    the shipped θ on other tasks].
    Estimator: ``estimator`` ["pes" | "es"], ``sigma`` [0.01], ``truncation`` [50], ``num_groups`` [1] estimators
    per outer step, ``tasks_per_group`` [8] vmapped problems each, ``resample_every`` [100] outer steps between
    group draws, ``horizon`` ["log_uniform" | "constant"], ``horizon_min``/``horizon_max`` [100/1000],
    ``horizon_final_min``/``horizon_final_max``/``horizon_anneal_steps`` (linear change of the bounds),
    ``random_offsets`` [True], ``meta_loss`` ["train" | "outer_valid"], ``loss_scale`` ["none" | "initial": each
    problem's meta-loss divided by its own initial normalised loss, at least ``scale_floor`` [0.5]],
    ``loss_clip`` [20.0; the cap of a step's meta-loss, and the score of a diverged step], ``valid_every``
    [10; 0 = never feed validation losses], ``valid_split`` ["inner_valid"].
    Outer optimizer: ``outer_opt`` ["adam" | "sgd" | "lopt:PATH" (a θ checkpoint/npz used through
    ``lopt_trainer.optax_api``)], ``outer_lr`` [1e-4], ``outer_clip`` [3.0; global-norm clip, 0 = none],
    ``outer_clip_value`` [0 = none; clip every meta-gradient entry to ±value, the paper's 0.1],
    ``outer_warmup`` [0; outer steps of a linear learning-rate warm-up from 0, which also warms Adam's moments].
    Initialisation: ``theta_init`` ["auto": "handset" when the learned optimizer has a hand-set θ (the hierarchical
    one does), else "random" | "handset": the θ of :func:`lopt_trainer.hierarchical.init_handset`, an untrained
    optimizer that already descends (on the quality panel it scores +0.41 where the random θ scores −2.58) |
    "random"].
    Quality panel: ``panel_every`` [0 = never; outer steps between evaluations of θ on the fixed panel of held-out
    tasks, :mod:`lopt_trainer.evaluation.panel`; the best θ by panel score is kept as ``RUN/best_theta.npz``],
    ``panel`` [{}: keyword settings of :func:`lopt_trainer.evaluation.panel.PanelSettings`].
    Run: ``seed``, ``steps``, ``checkpoint_every`` [50], ``eval_every`` [50; 0 = never], ``eval_tasks`` [3],
    ``eval_steps`` [200], ``workers`` [0 = in process], ``address`` [None = local Ray cluster],
    ``pin_workers`` [False], ``compilation_cache`` [None = ``$TASKGEN_JAX_CACHE`` or ``~/.cache/taskgen/jax``;
    "" = off].
    """

    manifest: str | None = None
    suite: str | None = None
    filters: dict = dataclasses.field(default_factory=lambda: {"split": ["meta_train"]})
    max_params: int | None = None
    max_flops: int | None = None
    plugins: list = dataclasses.field(default_factory=list)
    lopt: str = "hierarchical"
    init_theta: str | None = None
    estimator: str = "pes"
    sigma: float = 0.01
    truncation: int = 50
    num_groups: int = 1
    tasks_per_group: int = 8
    resample_every: int = 100
    horizon: str = "log_uniform"
    horizon_min: int = 100
    horizon_max: int = 1000
    horizon_final_min: int | None = None
    horizon_final_max: int | None = None
    horizon_anneal_steps: int = 0
    random_offsets: bool = True
    meta_loss: str = "train"
    loss_scale: str = "none"
    scale_floor: float = 0.5
    loss_clip: float = 20.0
    valid_every: int = 10
    valid_split: str = "inner_valid"
    outer_opt: str = "adam"
    outer_lr: float = 1e-4
    outer_clip: float = 3.0
    outer_clip_value: float = 0.0
    outer_warmup: int = 0
    theta_init: str = "auto"
    panel_every: int = 0
    panel: dict = dataclasses.field(default_factory=dict)
    seed: int = 0
    steps: int = 1000
    checkpoint_every: int = 50
    eval_every: int = 50
    eval_tasks: int = 3
    eval_steps: int = 200
    workers: int = 0
    address: str | None = None
    pin_workers: bool = False
    compilation_cache: str | None = None

    def estimator_settings(self) -> EstimatorSettings:
        """The hashable estimator settings of this config."""
        return EstimatorSettings(
            kind=self.estimator, sigma=float(self.sigma),
            unroll=UnrollSettings(truncation=int(self.truncation), meta_loss=self.meta_loss,
                                  loss_clip=float(self.loss_clip), valid_every=int(self.valid_every),
                                  valid_split=self.valid_split, loss_scale=self.loss_scale,
                                  scale_floor=float(self.scale_floor)))

    def horizon_schedule(self) -> HorizonSchedule:
        """The horizon schedule of this config."""
        return HorizonSchedule(self.horizon, int(self.horizon_min), int(self.horizon_max),
                               self.horizon_final_min, self.horizon_final_max, int(self.horizon_anneal_steps))

    def to_dict(self) -> dict:
        """All settings as a JSON-able dict."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Canonical JSON of :meth:`to_dict` (sorted keys, indented)."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=1)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MetaTrainConfig":
        """A config from a dict; unknown keys raise ``ValueError`` naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown meta-train settings {unknown}; known: {sorted(names)}")
        cfg = cls(**data)
        cfg.estimator_settings()  # validates estimator kind, sigma and the unroll settings
        if cfg.theta_init not in ("auto", "random", "handset"):
            raise ValueError(f"unknown theta_init {cfg.theta_init!r}; use 'auto', 'random' or 'handset'")
        return cfg


def read_config_dict(path) -> dict:
    """The settings a config file (``.json`` or ``.toml``) sets, as a dict (not yet validated)."""
    path = Path(path)
    if path.suffix == ".toml":
        import tomllib

        return tomllib.loads(path.read_text())
    return json.loads(path.read_text())


def load_config(path) -> MetaTrainConfig:
    """Read a config file (``.json`` or ``.toml``)."""
    return MetaTrainConfig.from_dict(read_config_dict(path))
