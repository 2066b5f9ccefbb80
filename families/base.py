"""The contract between the task registry and every task family.

A *family* turns a seeded random stream into a plain-JSON config, validates configs, estimates their cost
analytically, and builds a spec into a runnable :class:`Task`. A *task* is a bundle of pure JAX functions plus
the arrays they run on, so the training loop (which lives elsewhere) can jit, scan and vmap it.

Compiled-code reuse: two tasks with equal :attr:`Task.static_key` share the *same* function objects
(``init``, ``loss``, ``sample_batch``, ``normalizer``) and differ only in the arrays of :attr:`Task.splits`.
A trainer may therefore key its compiled step on ``static_key`` and pass the split arrays as jit arguments.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from families.errors import ConfigError

SPLITS = ("train", "inner_valid", "outer_valid", "test")
"""The four data splits every task has, in this order."""

__all__ = ["SPLITS", "ConfigError", "Cost", "Family", "Task"]

Params = Any
Batch = Any
SplitData = Any


@dataclasses.dataclass(frozen=True)
class Cost:
    """Analytic cost of one task: trainable parameter count and forward+backward FLOPs per training step."""

    params: int
    flops_per_step: int


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """A runnable training problem built from a spec.

    Fields:
      spec: the ``TaskSpec`` it was built from.
      init: ``init(key) -> params`` (a pytree of float32 arrays).
      loss: ``loss(params, batch, key) -> scalar`` float32 loss on one batch; ``key`` drives any stochasticity
        (noise, dropout); deterministic tasks ignore it.
      sample_batch: ``sample_batch(split_data, key) -> batch``: a pure, jittable draw of one fixed-shape batch
        from the arrays of one split.
      splits: ``{"train", "inner_valid", "outer_valid", "test"} -> split_data`` (pytrees of arrays). Pass them to
        jitted code as arguments; never close over them.
      normalizer: ``normalizer(loss) -> scalar`` mapping this family's loss to a range comparable across
        families (documented per family; lower is better; an untrained model scores roughly 1-10, and the best
        reachable value depends on the family and can be negative: a perfect classifier of C classes scores
        −10·log(C/5)/log C, −3.0 for 10 classes).
      static_key: hashable; tasks with equal ``static_key`` share the four function objects above.
      batch_size: examples per batch (1 for deterministic objectives).
    """

    spec: Any
    init: Callable[[Any], Params]
    loss: Callable[[Params, Batch, Any], Any]
    sample_batch: Callable[[SplitData, Any], Batch]
    splits: Mapping[str, SplitData]
    normalizer: Callable[[Any], Any]
    static_key: Hashable
    batch_size: int

    def __post_init__(self):
        missing = [s for s in SPLITS if s not in self.splits]
        if missing:
            raise ValueError(f"task {getattr(self.spec, 'task_id', '?')} lacks data splits {missing}")

    def init_key(self):
        """The default parameter-init key of this task: ``jax.random.PRNGKey(spec.seed)``."""
        import jax

        return jax.random.PRNGKey(self.spec.seed)

    def batch(self, split: str, key):
        """Draw one batch of ``split`` with ``key`` (convenience for eager use; jitted code calls
        ``sample_batch`` on the split arrays directly)."""
        return self.sample_batch(self.splits[split], key)


class Family(abc.ABC):
    """A parameterized task family.

    Subclasses set ``name`` and ``version`` (bump ``version`` whenever the meaning of a config changes, so frozen
    specs keep their meaning), and implement the five methods. Families hold no training logic and download
    nothing themselves.
    """

    name: str = ""
    version: int = 1

    @abc.abstractmethod
    def config_space(self) -> Mapping[str, Any]:
        """The config space as a ``families.space`` schema (used for validation and by ``taskgen families``)."""

    @abc.abstractmethod
    def sample(self, rng) -> dict:
        """Draw one fully-resolved, JSON-typed config from ``rng`` (a :class:`families.sampling.SpecRNG`)."""

    def validate(self, config: Mapping[str, Any]) -> None:
        """Raise :class:`ConfigError` naming the field if ``config`` is not in this family's config space.

        The default checks the config against :meth:`config_space`; override to add cross-field checks (call
        ``super().validate(config)`` first).
        """
        from families.space import validate_config

        space = self.__dict__.get("_config_space_cache")
        if space is None:  # the space is declarative: build it once per family object
            space = self.__dict__["_config_space_cache"] = self.config_space()
        validate_config(space, config)

    @abc.abstractmethod
    def cost(self, config: Mapping[str, Any]) -> Cost:
        """Parameter count and FLOPs per training step, computed analytically (no model build)."""

    @abc.abstractmethod
    def build(self, spec) -> Task:
        """Build ``spec`` (a ``TaskSpec`` of this family) into a :class:`Task`, loading real data as needed."""

    def variant(self, config: Mapping[str, Any]) -> str:
        """A coarse sub-kind of a config (e.g. ``twod/rosenbrock``) used to hold out whole variants; default:
        the family name."""
        return self.name

    def describe(self, config: Mapping[str, Any]) -> dict:
        """Flat, filterable manifest columns for ``config``: ``dataset`` (str), ``input_shape`` (list of int),
        ``batch_size`` (int). Override in families that have them."""
        return {"dataset": "", "input_shape": [], "batch_size": 1}
