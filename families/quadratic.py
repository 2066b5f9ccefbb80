"""``quadratic``: noisy, scaled least-squares objectives ``output(‖A x − b‖²) · loss_scale`` (TaskSet's family).

Config (all JSON)::

    {"dims": 57,                                   # logint[2, 1000]
     "matrix": {"kind": "linspace_eigen", "min": 3.1, "max": 80.2},
     "init": "normal",                             # x0 ~ N(0, 1) or U(-1, 1) per coordinate
     "output": "identity",                         # or "log"
     "loss_scale": 0.031,                          # logfloat[1e-5, 1e3]
     "noise_std": 0.0}                             # 0 = exact A; else logU[0.01, 1] (see below)

Matrix kinds (TaskSet's ranges):

* ``normal``: entries ``N(mean, std²)``, ``mean ~ N(0, 1)``, ``std ~ U(0, 2)``.
* ``uniform``: entries ``U(min, max)``, ``min ~ U(−3, 1)``, ``max = min + U(0, 5)``.
* ``linspace_eigen``: ``A = Q diag(s) Qᵀ``, ``s = linspace(min, max, dims)``, ``min ~ U(0.01, 50)``,
  ``max = min + U(0, 100)``.
* ``logspace_eigen``: ``A = Q diag(s) Qᵀ``, ``s = logspace(1e-5 … max)``, ``max ~ U(1, 1000)``.

``Q`` is the orthogonal factor of the QR decomposition (numpy, float64) of a standard-normal ``dims × dims``
matrix drawn with ``jax.random`` from the spec seed, with column signs fixed so ``diag(R) > 0`` (the decomposition
is then unique, so the eigenbasis is a deterministic function of the seed). ``b ~ N(0, 1)`` per coordinate, also
from the seed. Random numbers are drawn in fixed 4096-element chunks (:func:`draw`), so building a task compiles
nothing new whatever its ``dims``; the arrays are float32 numpy arrays.

Differences from TaskSet, on purpose:

* ``dims`` is capped at 1000 (TaskSet: 3000): a 3000² matrix is 36 MB per task and 1k steps of it are not cheap
  on a 2-core CPU; 1000 keeps every quadratic at ≤ 4 MB and ~4 GFLOP per 1k steps.
* The initial point is ``N(0, 1)`` or ``U(−1, 1)`` with fixed parameters (TaskSet also sampled their parameters):
  ``init(key)`` can only depend on the static config, and a continuous init parameter would give every task its
  own compiled code.
* Step noise: with probability 0.5, every loss evaluation uses ``A + E`` with ``E`` i.i.d.
  ``N(0, (noise_std · rms(A))²)`` drawn from the loss key, i.e. ``noise_std`` is *relative* to the RMS entry of
  ``A`` (TaskSet used an absolute sampled distribution, which swamps the eigen-spectrum matrices whose entries are
  ``O(s / √dims)``).
* ``output = log`` is ``log(‖A x − b‖² + 1e-10)`` so a solved problem does not give ``−inf``.

Data and compiled code: ``A``, ``b`` and the absolute noise std are arrays in :attr:`Task.splits` (the same fixed
arrays in all four splits; ``sample_batch`` returns the split data itself, ``batch_size`` 1), never closed over.
The static key keeps ``dims``, ``init``, ``output``, ``loss_scale`` and whether there is noise; it drops the matrix
config and the noise level, so e.g. every noiseless identity-output 100-d quadratic with the same scale shares one
compiled step whatever its matrix kind. ``loss_scale`` stays static because the normalizer must undo it (see
below) and a normalizer sees only the loss.

Normalizer: recover the residual ``r = ‖A x − b‖²`` from the loss (``r = L / scale`` or ``exp(L / scale)``), then
``clip(2 · log10(1 + r / dims), 0, 10)`` (NaN/inf → 10). ``r / dims`` is the mean squared residual per coordinate:
0 for a solved problem (→ 0), about 1 at ``x = 0`` (→ 0.6), and ``1 + ‖A‖_F² / dims`` at a random start
(roughly 10 … 10⁶ across the config space → 2 … 10).

Cost: ``dims`` parameters; FLOPs per step ``4·dims² + 5·dims`` (forward ``A x``, residual and squared norm,
backward ``Aᵀ r``), plus ``3·dims²`` with noise (draw, scale and add ``E``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

from families._lazy import jax, jnp, lazy_jit, np

from families.base import ConfigError, Cost, Family, Task, SPLITS
from families.common import static_key
from families.sampling import round_sig
from families.space import Float, Int, Struct, Tagged, choices

MAX_DIMS = 1000
LOG_EPS = 1e-10
LOGSPACE_MIN = 1e-5

MATRIX_SPACE = Tagged("kind", {
    "normal": Struct({"mean": Float(-10.0, 10.0), "std": Float(0.0, 2.0)}),
    "uniform": Struct({"min": Float(-3.0, 1.0), "max": Float(-3.0, 6.0)}),
    "linspace_eigen": Struct({"min": Float(0.01, 50.0), "max": Float(0.01, 150.0)}),
    "logspace_eigen": Struct({"max": Float(1.0, 1000.0)}),
})
MATRIX_KINDS = ("normal", "linspace_eigen", "uniform", "logspace_eigen")

# fold_in constants for the build-time draws (the init key is PRNGKey(seed) itself, so these differ from it).
_KEY_MATRIX, _KEY_BASIS, _KEY_TARGET = 1, 2, 3


def sample_matrix(rng) -> dict:
    """One matrix config with TaskSet's distributions (kinds equally likely)."""
    kind = rng.choice(MATRIX_KINDS)
    if kind == "normal":
        return {"kind": kind, "mean": rng.normal(0.0, 1.0), "std": rng.uniform(0.0, 2.0)}
    if kind == "uniform":
        lo = rng.uniform(-3.0, 1.0)
        return {"kind": kind, "min": lo, "max": round_sig(lo + rng.uniform(0.0, 5.0))}
    if kind == "linspace_eigen":
        lo = rng.uniform(0.01, 50.0)
        return {"kind": kind, "min": lo, "max": round_sig(lo + rng.uniform(0.0, 100.0))}
    return {"kind": kind, "max": rng.uniform(1.0, 1000.0)}


_CHUNK = 4096


@lazy_jit
def _normal_chunk(key, i):
    return jax.random.normal(jax.random.fold_in(key, i), (_CHUNK,), jnp.float32)


@lazy_jit
def _uniform_chunk(key, i):
    return jax.random.uniform(jax.random.fold_in(key, i), (_CHUNK,), jnp.float32)


def draw(key, shape, dist: str = "normal") -> np.ndarray:
    """``N(0, 1)`` (or ``U[0, 1)``) float32 numbers of ``shape`` from ``key`` with ``jax.random``, drawn in
    fixed-size chunks (chunk ``i`` from ``fold_in(key, i)``) so that no new program is compiled per shape: a
    build costs no XLA compile whatever ``dims`` is."""
    n = int(np.prod(shape))
    fn = _normal_chunk if dist == "normal" else _uniform_chunk
    chunks = [np.asarray(fn(key, np.uint32(i))) for i in range(-(-n // _CHUNK))]
    return np.concatenate(chunks)[:n].reshape(shape)


def eigenbasis(key, dims: int) -> np.ndarray:
    """The orthogonal ``Q`` (float64) of the QR of an ``N(0,1)`` ``dims × dims`` matrix drawn with ``key``, column
    signs fixed so that ``diag(R) > 0`` (a unique, deterministic function of ``key``)."""
    q, r = np.linalg.qr(draw(key, (dims, dims)).astype(np.float64))
    return q * np.where(np.diagonal(r) < 0, -1.0, 1.0)[None, :]


def eigenvalues(matrix: Mapping, dims: int) -> np.ndarray:
    """The ascending spectrum ``s`` (float64) of an eigen-spectrum matrix config."""
    if matrix["kind"] == "linspace_eigen":
        return np.linspace(matrix["min"], matrix["max"], dims)
    if matrix["kind"] == "logspace_eigen":
        return np.logspace(math.log10(LOGSPACE_MIN), math.log10(matrix["max"]), dims)
    raise ValueError(f"{matrix['kind']!r} is not an eigen-spectrum matrix kind")


def build_matrix(matrix: Mapping, dims: int, seed: int) -> np.ndarray:
    """The ``dims × dims`` float32 matrix ``A`` of a matrix config, drawn deterministically from ``seed``."""
    base = jax.random.PRNGKey(seed)
    kind = matrix["kind"]
    if kind == "normal":
        z = draw(jax.random.fold_in(base, _KEY_MATRIX), (dims, dims)).astype(np.float64)
        return (matrix["mean"] + matrix["std"] * z).astype(np.float32)
    if kind == "uniform":
        u = draw(jax.random.fold_in(base, _KEY_MATRIX), (dims, dims), "uniform").astype(np.float64)
        return (matrix["min"] + (matrix["max"] - matrix["min"]) * u).astype(np.float32)
    q = eigenbasis(jax.random.fold_in(base, _KEY_BASIS), dims)
    a = (q * eigenvalues(matrix, dims)[None, :]) @ q.T
    return (0.5 * (a + a.T)).astype(np.float32)


def problem_arrays(matrix: Mapping, dims: int, seed: int, noise_std: float = 0.0):
    """``(A, b, absolute noise std)`` of a config as float32 numpy arrays, drawn from ``seed`` with
    ``jax.random`` (``b ~ N(0, 1)``; the noise std is ``noise_std · rms(A)``)."""
    a = build_matrix(matrix, dims, seed)
    b = draw(jax.random.fold_in(jax.random.PRNGKey(seed), _KEY_TARGET), (dims,))
    rms = float(np.sqrt(np.mean(np.square(a, dtype=np.float64))))
    return a, b, np.float32(noise_std * rms)


def _output(name: str):
    return (lambda r: r) if name == "identity" else (lambda r: jnp.log(r + LOG_EPS))


@functools.lru_cache(maxsize=None)
def _functions(key: str, dims: int, init: str, output: str, loss_scale: float, noisy: bool):
    """``(init, loss, sample_batch, normalizer)`` for one static key (cached: equal keys share objects)."""
    del key  # only part of the cache key
    out = _output(output)

    def init_fn(rng):
        if init == "normal":
            x = jax.random.normal(rng, (dims,), jnp.float32)
        else:
            x = jax.random.uniform(rng, (dims,), jnp.float32, -1.0, 1.0)
        return {"x": x}

    def loss_fn(params, batch, key):
        a = jnp.asarray(batch["A"])
        if noisy:
            a = a + batch["noise_std"] * jax.random.normal(key, a.shape, a.dtype)
        residual = jnp.dot(a, params["x"]) - batch["b"]
        return out(jnp.sum(jnp.square(residual))) * loss_scale

    def sample_batch(split_data, key):
        del key  # the objective has no data to sample: the "batch" is the fixed problem itself
        return split_data

    def normalizer(loss):
        value = loss / loss_scale
        r = value if output == "identity" else jnp.exp(value) - LOG_EPS
        n = 2.0 * jnp.log10(1.0 + jnp.maximum(r, 0.0) / dims)
        return jnp.clip(jnp.nan_to_num(n, nan=10.0, posinf=10.0), 0.0, 10.0)

    # init is jitted so eager callers pay one compile per shape instead of one per primitive.
    return jax.jit(init_fn), loss_fn, sample_batch, normalizer


class QuadraticFamily(Family):
    """TaskSet's ``quadratic`` family (see the module docstring for the config, the loss and the normalizer)."""

    name = "quadratic"
    version = 1

    def config_space(self):
        return Struct({
            "dims": Int(2, MAX_DIMS),
            "matrix": MATRIX_SPACE,
            "init": choices(["normal", "uniform"]),
            "output": choices(["identity", "log"]),
            "loss_scale": Float(1e-5, 1e3),
            "noise_std": Float(0.0, 1.0),
        })

    def sample(self, rng) -> dict:
        config = {
            "matrix": sample_matrix(rng),
            "init": rng.choice(["normal", "uniform"]),
            "output": rng.choice(["identity", "log"]),
            "dims": rng.log_int(2, MAX_DIMS),
            "loss_scale": rng.log_float(1e-5, 1e3),
        }
        config["noise_std"] = rng.log_float(0.01, 1.0) if rng.bool(0.5) else 0.0
        return config

    def validate(self, config) -> None:
        super().validate(config)
        matrix = config["matrix"]
        if "min" in matrix and matrix["max"] < matrix["min"]:
            raise ConfigError("matrix.max", f"{matrix['max']} is below matrix.min = {matrix['min']}")

    def cost(self, config) -> Cost:
        d = int(config["dims"])
        flops = 4 * d * d + 5 * d + (3 * d * d if config["noise_std"] > 0 else 0)
        return Cost(params=d, flops_per_step=flops)

    def variant(self, config) -> str:
        return f"quadratic/{config['matrix']['kind']}"

    def describe(self, config) -> dict:
        return {"dataset": "", "input_shape": [int(config["dims"])], "batch_size": 1}

    def static_config(self, config) -> dict:
        """The fields that shape the compiled code (everything else is data in :attr:`Task.splits`)."""
        return {"dims": config["dims"], "init": config["init"], "output": config["output"],
                "loss_scale": config["loss_scale"], "noisy": config["noise_std"] > 0}

    def static_key(self, config) -> str:
        """The key of the compiled code of ``config`` (tasks with equal keys share their functions)."""
        return static_key(self.name, self.static_config(config))

    def build(self, spec) -> Task:
        config = spec.config
        self.validate(config)
        static = self.static_config(config)
        key = self.static_key(config)
        fns = _functions(key, static["dims"], static["init"], static["output"], float(static["loss_scale"]),
                         static["noisy"])
        a, b, noise = problem_arrays(config["matrix"], config["dims"], spec.seed, config["noise_std"])
        data = {"A": a, "b": b, "noise_std": noise}
        return Task(spec=spec, init=fns[0], loss=fns[1], sample_batch=fns[2], splits={s: data for s in SPLITS},
                    normalizer=fns[3], static_key=key, batch_size=1)
