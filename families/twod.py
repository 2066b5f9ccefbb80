"""``twod``: classic 2-D test functions (TaskSet's LOSG problems) with optional gradient noise.

Config (all JSON)::

    {"problem": "bowl", "cond": 3.7, "angle": 0.7853981633974483,   # cond/angle only for bowl
     "noise_std": 0.0,                                             # 0 = exact gradients; else logU[0.01, 10]
     "start_box": [[-5.0, 5.0], [-5.0, 5.0]]}                      # [[x_lo, x_hi], [y_lo, y_hi]]

Problems (``f`` of ``(x, y)``; ``f_min`` is the known global minimum used by the normalizer):

=================  ==========================================================================  ============
problem            f(x, y)                                                                      f_min
=================  ==========================================================================  ============
bowl               ``vᵀ Rᵀ diag(cond, 1) R v``, ``R`` the rotation by ``angle``,                0
                   ``cond ~ logU[0.01, 100]``, ``angle ∈ {0, 0, π/4, π/3}``
rosenbrock         ``(1 − x)² + 100 (y − x²)²``                                                0 at (1, 1)
ackley             ``−20 exp(−0.2 √(½(x²+y²))) − exp(½(cos 2πx + cos 2πy)) + e + 20``         0 at (0, 0)
beale              ``(1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²``                0 at (3, ½)
branin             ``(y − 5.1x²/4π² + 5x/π − 6)² + 10 (1 − 1/8π) cos x + 10``                  0.397887
matyas             ``0.26 (x² + y²) − 0.48 xy``                                                0 at (0, 0)
michalewicz        ``−sin x sin²⁰(x²/π) − sin y sin²⁰(2y²/π)`` (m = 10)                        −1.8013
styblinski_tang    ``½ Σ (t⁴ − 16t² + 5t)`` over t ∈ {x, y}                                    −78.33234
logsumexp          ``log(eˣ + eʸ + e^(−x−y))`` (a fixed, bounded-below log-sum-exp)             log 3 at 0
line_minimum       ``(x − y)²``: its minima form the line x = y (implicit-regularisation runs)  0
=================  ==========================================================================  ============

``start_box`` is each problem's usual search domain (:data:`DOMAINS`) when sampled; ``init(key)`` draws the
start point uniformly from it, so the default start ``init(PRNGKey(spec.seed))`` is a deterministic function of
the spec, and a user may set any box (a degenerate ``[a, a]`` interval pins a coordinate).

Gradient noise: the loss is ``f(p) + noise · (p − stop_gradient(p))`` with ``noise ~ N(0, noise_std²)`` per
coordinate from the loss key, so the *value* is exactly ``f(p)`` while the gradient gets the noise.

Data and compiled code: ``noise_std`` and the bowl's 2×2 matrix are arrays in :attr:`Task.splits` (the same in
all four splits; ``sample_batch`` returns them); the static key is ``(problem, start_box)``, so e.g. every bowl
with the default box shares one compiled step whatever its condition number, angle and noise.

Normalizer: ``clip(log(1 + f − f_min), 0, 10)`` (NaN/inf → 10): 0 at the minimum, about 1 … 10 at a typical
start (michalewicz, whose whole range is 1.8, stays near 1).

Cost: 2 parameters; FLOPs per step are a per-problem count of the forward elementwise operations times 3 (forward
plus backward), plus 8 for the noise term.
"""

from __future__ import annotations

import functools
import math

from families._lazy import jax, jnp, np

from families.base import ConfigError, Cost, Family, Task, SPLITS
from families.common import static_key
from families.space import Float, ListOf, Struct, choices

PROBLEMS = ("bowl", "rosenbrock", "ackley", "beale", "branin", "matyas", "michalewicz", "styblinski_tang",
            "logsumexp", "line_minimum")

DOMAINS = {
    "bowl": [[-5.0, 5.0], [-5.0, 5.0]],
    "rosenbrock": [[-2.0, 2.0], [-1.0, 3.0]],
    "ackley": [[-5.0, 5.0], [-5.0, 5.0]],
    "beale": [[-4.5, 4.5], [-4.5, 4.5]],
    "branin": [[-5.0, 10.0], [0.0, 15.0]],
    "matyas": [[-10.0, 10.0], [-10.0, 10.0]],
    "michalewicz": [[0.0, math.pi], [0.0, math.pi]],
    "styblinski_tang": [[-5.0, 5.0], [-5.0, 5.0]],
    "logsumexp": [[-5.0, 5.0], [-5.0, 5.0]],
    "line_minimum": [[-5.0, 5.0], [-5.0, 5.0]],
}
"""The usual search domain of each problem, the sampled ``start_box``."""

F_MIN = {
    "bowl": 0.0, "rosenbrock": 0.0, "ackley": 0.0, "beale": 0.0, "branin": 0.39788735772973816, "matyas": 0.0,
    "michalewicz": -1.8013034100985537, "styblinski_tang": -78.33233140754282, "logsumexp": math.log(3.0),
    "line_minimum": 0.0,
}
"""Known global minimum value of each problem (used by the normalizer)."""

FORWARD_FLOPS = {
    "bowl": 10, "rosenbrock": 8, "ackley": 20, "beale": 20, "branin": 15, "matyas": 7, "michalewicz": 50,
    "styblinski_tang": 14, "logsumexp": 10, "line_minimum": 3,
}

BOWL_ANGLES = (0.0, 0.0, math.pi / 4, math.pi / 3)


def _safe_sqrt(v):
    """``sqrt`` with a zero (not NaN) gradient at 0."""
    positive = v > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, v, 1.0)), 0.0)


def rosenbrock(p):
    x, y = p[0], p[1]
    return jnp.square(1.0 - x) + 100.0 * jnp.square(y - x * x)


def ackley(p):
    x, y = p[0], p[1]
    r = _safe_sqrt(0.5 * (x * x + y * y))
    c = 0.5 * (jnp.cos(2 * jnp.pi * x) + jnp.cos(2 * jnp.pi * y))
    return -20.0 * jnp.exp(-0.2 * r) - jnp.exp(c) + jnp.e + 20.0


def beale(p):
    x, y = p[0], p[1]
    return (jnp.square(1.5 - x + x * y) + jnp.square(2.25 - x + x * y * y)
            + jnp.square(2.625 - x + x * y * y * y))


def branin(p):
    x, y = p[0], p[1]
    b, c, t = 5.1 / (4 * math.pi ** 2), 5.0 / math.pi, 1.0 / (8 * math.pi)
    return jnp.square(y - b * x * x + c * x - 6.0) + 10.0 * (1.0 - t) * jnp.cos(x) + 10.0


def matyas(p):
    x, y = p[0], p[1]
    return 0.26 * (x * x + y * y) - 0.48 * x * y


def michalewicz(p, m: int = 10):
    i = jnp.arange(1, p.shape[0] + 1, dtype=p.dtype)
    return -jnp.sum(jnp.sin(p) * jnp.sin(i * p * p / jnp.pi) ** (2 * m))


def styblinski_tang(p):
    return 0.5 * jnp.sum(p ** 4 - 16.0 * p * p + 5.0 * p)


def logsumexp(p):
    x, y = p[0], p[1]
    return jax.nn.logsumexp(jnp.stack([x, y, -x - y]))


def line_minimum(p):
    return jnp.square(p[0] - p[1])


def bowl(p, matrix):
    return p @ matrix @ p


def bowl_matrix(cond: float, angle: float):
    """``Rᵀ diag(cond, 1) R`` with ``R`` the rotation by ``angle`` (float32, 2×2)."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.asarray([[c, -s], [s, c]], np.float64)
    return (rot.T @ np.diag([float(cond), 1.0]) @ rot).astype(np.float32)


FUNCTIONS = {
    "rosenbrock": rosenbrock, "ackley": ackley, "beale": beale, "branin": branin, "matyas": matyas,
    "michalewicz": michalewicz, "styblinski_tang": styblinski_tang, "logsumexp": logsumexp,
    "line_minimum": line_minimum,
}
"""The fixed problems as ``f(p)`` for ``p`` of shape ``(2,)`` (``bowl`` also takes its matrix)."""


def objective(problem: str):
    """``f(p, data)`` of a problem, ``data`` being the task's split data (only the bowl reads it)."""
    if problem == "bowl":
        return lambda p, data: bowl(p, data["matrix"])
    fn = FUNCTIONS[problem]
    return lambda p, data: fn(p)


@functools.lru_cache(maxsize=None)
def _functions(key: str, problem: str, box: tuple):
    """``(init, loss, sample_batch, normalizer)`` for one static key (cached: equal keys share objects)."""
    del key  # only part of the cache key
    f = objective(problem)
    lo = np.asarray([box[0][0], box[1][0]], np.float32)
    hi = np.asarray([box[0][1], box[1][1]], np.float32)
    f_min = F_MIN[problem]

    def init_fn(rng):
        return {"xy": jax.random.uniform(rng, (2,), jnp.float32, lo, hi)}

    def loss_fn(params, batch, key):
        p = params["xy"]
        noise = batch["noise_std"] * jax.random.normal(key, (2,), p.dtype)
        return f(p, batch) + jnp.dot(noise, p - jax.lax.stop_gradient(p))

    def sample_batch(split_data, key):
        del key  # the objective has no data to sample
        return split_data

    def normalizer(loss):
        n = jnp.log1p(jnp.maximum(loss - f_min, 0.0))
        return jnp.clip(jnp.nan_to_num(n, nan=10.0, posinf=10.0), 0.0, 10.0)

    # init is jitted so eager callers pay one compile per shape instead of one per primitive.
    return jax.jit(init_fn), loss_fn, sample_batch, normalizer


class TwoDFamily(Family):
    """2-D test functions (see the module docstring for problems, noise, start box and normalizer)."""

    name = "twod"
    version = 1

    def config_space(self):
        return Struct({
            "problem": choices(PROBLEMS),
            "cond": Float(0.01, 100.0),
            "angle": Float(-math.pi, math.pi),
            "noise_std": Float(0.0, 10.0),
            "start_box": ListOf(ListOf(Float(-1e3, 1e3), 2, 2), 2, 2),
        }, optional=frozenset({"cond", "angle"}))

    def sample(self, rng) -> dict:
        problem = rng.choice(PROBLEMS)
        config = {"problem": problem}
        if problem == "bowl":
            config["cond"] = rng.log_float(0.01, 100.0)
            config["angle"] = rng.choice(BOWL_ANGLES)
        config["noise_std"] = rng.log_float(0.01, 10.0) if rng.bool(0.5) else 0.0
        config["start_box"] = [list(iv) for iv in DOMAINS[problem]]
        return config

    def validate(self, config) -> None:
        super().validate(config)
        is_bowl = config["problem"] == "bowl"
        for name in ("cond", "angle"):
            if is_bowl and name not in config:
                raise ConfigError(name, "missing required field (the bowl problem needs cond and angle)")
            if not is_bowl and name in config:
                raise ConfigError(name, f"only the bowl problem takes {name}, not {config['problem']!r}")
        for i, (lo, hi) in enumerate(config["start_box"]):
            if hi < lo:
                raise ConfigError(f"start_box[{i}]", f"upper end {hi} is below lower end {lo}")

    def cost(self, config) -> Cost:
        return Cost(params=2, flops_per_step=3 * FORWARD_FLOPS[config["problem"]] + 8)

    def variant(self, config) -> str:
        return f"twod/{config['problem']}"

    def describe(self, config) -> dict:
        return {"dataset": "", "input_shape": [2], "batch_size": 1}

    def static_config(self, config) -> dict:
        """The fields that shape the compiled code (the rest is data in :attr:`Task.splits`)."""
        return {"problem": config["problem"], "start_box": config["start_box"]}

    def static_key(self, config) -> str:
        """The key of the compiled code of ``config`` (tasks with equal keys share their functions)."""
        return static_key(self.name, self.static_config(config))

    def build(self, spec) -> Task:
        config = spec.config
        self.validate(config)
        static = self.static_config(config)
        key = self.static_key(config)
        box = tuple(tuple(float(v) for v in iv) for iv in config["start_box"])
        fns = _functions(key, config["problem"], box)
        data = {"noise_std": np.asarray(config["noise_std"], np.float32)}
        if config["problem"] == "bowl":
            data["matrix"] = bowl_matrix(config["cond"], config["angle"])
        return Task(spec=spec, init=fns[0], loss=fns[1], sample_batch=fns[2], splits={s: data for s in SPLITS},
                    normalizer=fns[3], static_key=key, batch_size=1)
