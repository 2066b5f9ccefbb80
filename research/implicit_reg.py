"""Implicit regularisation: Adam vs the learned optimizer on ``f(x, y) = (x − y)²``.

The objective is the ``twod`` family's ``line_minimum`` problem (noiseless): every point of the line ``x = y`` is
a minimum, and the minimum closest to a start ``(x₀, y₀)`` is its projection ``((x₀+y₀)/2, (x₀+y₀)/2)``; the
minimum-norm minimum is the origin. Gradient descent (and Adam, whose two coordinates get opposite gradients of
equal size) moves along ``(1, −1)`` only, so it ends at the projection; the paper reports that the learned
optimizer also drifts toward the origin (a smaller-norm solution). We record every step of both optimizers from
several starting points and report the final distance to the origin, the distance of the projection (what pure
gradient flow would give) and the final loss.

The task is built from a spec and used only through the ``Task`` interface (``loss``, ``sample_batch``,
``splits``); the start points are set directly as the parameters ``{"xy": …}``. The learned optimizer (bare or
inside optax wrappers) gets the validation loss every ``valid_every`` steps, as in evaluation.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lopt_trainer.common.folder_lock import folder_lock
from lopt_trainer.common.run_files import write_json
from lopt_trainer.optimizer.optax_api import optax_lopt, validation_feed
from taskgen import TaskSpec, build_task, get_family

DEFAULT_STARTS = ((4.0, -2.0), (-3.0, 3.0), (5.0, 1.0), (-4.0, -1.0), (2.0, -5.0), (1.0, 4.5))
"""Starting points (all off the line x = y, at various distances from the origin)."""

RESULT_FILE, PLOT_FILE = "implicit_reg.json", "implicit_reg.png"


def line_task():
    """The noiseless ``twod/line_minimum`` task, ``f(x, y) = (x − y)²``."""
    config = {"problem": "line_minimum", "noise_std": 0.0, "start_box": [[-5.0, 5.0], [-5.0, 5.0]]}
    return build_task(TaskSpec.create("twod", get_family("twod").version, 0, config, "meta_test"))


def _scalar(out):
    return out[0] if isinstance(out, tuple) else out


def trajectories(task, tx, starts, steps: int, valid_every: int = 10, seed: int = 0) -> np.ndarray:
    """Positions ``[n_starts, steps + 1, 2]`` of ``tx`` (an optax transformation, updated with ``value=loss``)
    from each start; a transformation that takes validation losses (the learned optimizer, bare or inside any
    optax wrapper: ``optax_api.validation_feed``) is fed the ``inner_valid`` loss every ``valid_every`` steps."""
    if not isinstance(tx, optax.GradientTransformationExtraArgs) and not hasattr(tx, "observe_validation"):
        tx = optax.with_extra_args_support(tx)
    return np.asarray(_run(task.loss, task.sample_batch, tx, int(steps), int(valid_every))(
        jnp.asarray(starts, jnp.float32), task.splits["train"], task.splits["inner_valid"],
        jax.random.PRNGKey(seed)))


def _run(loss_fn, sample_batch, tx, steps, valid_every):
    def one(start, train, valid, key):
        params = {"xy": start}
        state0 = tx.init(params)
        observe = validation_feed(tx, state0)

        def step(carry, t):
            params, state = carry
            k = jax.random.fold_in(key, t)
            batch = sample_batch(train, k)
            loss, grads = jax.value_and_grad(lambda p: _scalar(loss_fn(p, batch, k)))(params)
            updates, state = tx.update(grads, state, params, value=loss)
            params = optax.apply_updates(params, updates)
            if observe is not None:
                vloss = _scalar(loss_fn(params, sample_batch(valid, k), k))
                state = jax.lax.cond((t + 1) % valid_every == 0, lambda s: observe(s, vloss), lambda s: s, state)
            return (params, state), params["xy"]

        _, path = jax.lax.scan(step, (params, state0), jnp.arange(steps))
        return jnp.concatenate([start[None], path], axis=0)

    return jax.jit(jax.vmap(one, in_axes=(0, None, None, None)))


def summarize(paths: np.ndarray, starts) -> list[dict]:
    """Per start: start, end point, final distance to the origin, the projection's distance, final loss."""
    out = []
    for s, p in zip(np.asarray(starts, np.float64), paths):
        end = p[-1].astype(np.float64)
        out.append({"start": s.tolist(), "end": end.tolist(), "final_norm": float(np.linalg.norm(end)),
                    "projection_norm": float(abs(s.sum()) / np.sqrt(2.0)),
                    "final_loss": float((end[0] - end[1]) ** 2),
                    "finite": bool(np.all(np.isfinite(p)))})
    return out


def run_implicit_reg(theta, out_dir=None, *, starts=DEFAULT_STARTS, steps: int = 1000, adam_lr: float = 0.05,
                     valid_every: int = 10, theta_path=None) -> dict:
    """Run Adam (``adam_lr``) and the learned optimizer (θ) from ``starts`` for ``steps`` steps.

    Returns ``{"settings", "adam": {...}, "lopt": {...}}`` where each optimizer has ``runs`` (per start, see
    :func:`summarize`), ``mean_final_norm`` and ``trajectories`` (``[n_starts][steps + 1][2]``, subsampled to at
    most 501 points). With ``out_dir``: writes ``implicit_reg.json`` and ``implicit_reg.png`` there.
    """
    task = line_task()
    result = {"settings": {"steps": int(steps), "adam_lr": float(adam_lr), "valid_every": int(valid_every),
                           "starts": [list(map(float, s)) for s in starts],
                           "theta_path": None if theta_path is None else str(theta_path),
                           "objective": "(x - y)^2 (twod/line_minimum)"}}
    for name, tx in (("adam", optax.adam(adam_lr)), ("lopt", optax_lopt(theta))):
        paths = trajectories(task, tx, starts, steps, valid_every)
        runs = summarize(paths, starts)
        stride = max(1, steps // 500)
        idx = sorted(set(range(0, steps + 1, stride)) | {steps})
        result[name] = {"runs": runs, "mean_final_norm": float(np.mean([r["final_norm"] for r in runs])),
                        "trajectories": paths[:, idx, :].astype(np.float64).tolist()}
    result["mean_projection_norm"] = float(np.mean([r["projection_norm"] for r in result["adam"]["runs"]]))
    if out_dir is not None:
        with folder_lock(out_dir):  # one writer per folder (lopt_trainer.common.folder_lock)
            write_json(Path(out_dir) / RESULT_FILE, result)
            plot_implicit_reg(result, Path(out_dir) / PLOT_FILE)
    return result


def plot_implicit_reg(result: dict, path) -> Path:
    """Trajectories of both optimizers over the contours of ``(x − y)²``, the line of minima and the origin."""
    import matplotlib  # optional heavy dependency: imported only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = np.concatenate([np.asarray(result[n]["trajectories"], np.float64).reshape(-1, 2)
                          for n in ("adam", "lopt")])
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    lim = float(max(6.0, np.abs(pts).max() * 1.1 if pts.size else 6.0))
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), sharex=True, sharey=True)
    g = np.linspace(-lim, lim, 200)
    xx, yy = np.meshgrid(g, g)
    titles = {"adam": f"Adam (lr {result['settings']['adam_lr']:g})", "lopt": "learned optimizer"}
    for ax, name in zip(axes, ("adam", "lopt")):
        ax.contour(xx, yy, (xx - yy) ** 2, levels=12, colors="lightgray", linewidths=0.6)
        ax.plot(g, g, color="green", lw=1, ls="--", label="minima (x = y)")
        ax.plot([0], [0], marker="*", color="black", ms=10, ls="", label="origin")
        for k, traj in enumerate(result[name]["trajectories"]):
            t = np.asarray(traj, np.float64)
            line, = ax.plot(t[:, 0], t[:, 1], lw=1.2)
            ax.plot(t[0, 0], t[0, 1], "o", color=line.get_color(), ms=4)
            ax.plot(t[-1, 0], t[-1, 1], "s", color=line.get_color(), ms=5)
        ax.set_title(f"{titles[name]}: mean final ‖p‖ = {result[name]['mean_final_norm']:.3g}")
        ax.set_xlabel("x")
        ax.set_aspect("equal")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    axes[0].set_ylabel("y")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(f"(x − y)², {result['settings']['steps']} steps (o start, ■ end); "
                 f"projection onto the line: mean ‖p‖ = {result['mean_projection_norm']:.3g}")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
