"""The optimised JAX step agrees with a straightforward numpy re-implementation.

The numpy code below is written from the specification
(`shared/reference/hierarchical-lopt.md` + issue 4) in the reference layout:
every one of the 52 LSTM inputs and 54 MLP inputs is materialised by name,
the full 54 -> 32 -> 32 -> 18 MLP runs per scalar, in float64, with θ read
through the reference keys.  Agreement to ~1e-5 is our proof of "identical
results" for the folded / pruned MLP of `hierarchical.update`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import numpy as np

from lopt_trainer import hierarchical as H
from lopt_trainer import reference_io as R

DECAYS = np.array([0.5, 0.9, 0.99, 0.999, 0.9999])
TIMESCALES = np.array([1, 3, 10, 30, 100, 300, 1e3, 3e3, 1e4, 3e4, 1e5])


def cla(x):
    return np.clip(np.log(1e-8 + np.abs(x)), -5.0, 5.0)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class NumpyReference:
    """One problem's optimizer state and step, straight from the spec (float64)."""

    def __init__(self, ref_theta, params):
        self.th = {k: np.asarray(v, np.float64) for k, v in ref_theta.items()}
        self.params = [np.asarray(p, np.float64) for p in params]
        n = len(params)
        self.m = [np.zeros(p.shape + (5,)) for p in params]
        self.v = [np.zeros(p.shape + (5,)) for p in params]
        self.it = 0
        self.h = np.repeat(self.th["lstm_init_state/hidden"], n, axis=0)
        self.c = np.repeat(self.th["lstm_init_state/cell"], n, axis=0)
        self.from_mlp = np.repeat(self.th["initial_from_mlp"][None], n, axis=0)
        self.from_lstm = self.th["initial_from_lstm"].copy()
        self.train = [0.0, 0.0, 0]  # mean, var, count
        self.valid = [0.0, 0.0, 0]
        self.clip_t, self.clip_s = 1, 0.01

    @staticmethod
    def _track(tr, loss, d):
        mean = d * tr[0] + (1 - d) * loss
        var = d * tr[1] + (1 - d) * (mean - loss) ** 2
        return [mean, var, tr[2] + 1]

    def observe_validation(self, loss):
        self.valid = self._track(self.valid, loss, 0.95)

    def step(self, grads, loss):
        th = self.th
        # 1. loss features
        self.train = self._track(self.train, loss, 0.9)
        c = 1.0 / (1.0 - 0.9 ** self.train[2] + 1e-8)
        std = lambda x: np.clip((x - c * self.train[0]) / np.sqrt(c * self.train[1] + 1e-8), -5, 5)
        train_feat = std(loss)
        cv = 1.0 / (1.0 - 0.95 ** self.valid[2] + 1e-8)
        valid_feat = std(self.valid[0] * cv)
        # 2. clipping
        bound = 10.0 * self.clip_s / (1 - 0.99 ** self.clip_t)
        gs = [np.clip(np.asarray(g, np.float64), -bound, bound) for g in grads]
        msq = np.mean([np.mean(g ** 2) for g in gs])
        self.clip_s = 0.99 * self.clip_s + 0.01 * np.sqrt(1e-8 + msq)
        self.clip_t += 1
        # 3. accumulators
        self.m = [DECAYS * m + (1 - DECAYS) * g[..., None] for m, g in zip(self.m, gs)]
        self.v = [DECAYS * v + (1 - DECAYS) * g[..., None] ** 2 for v, g in zip(self.v, gs)]
        # 4. LSTM inputs, by name, sorted
        rows = []
        for i, (p, g, m, v) in enumerate(zip(self.params, gs, self.m, self.v)):
            shape = p.shape + (1,) * (4 - p.ndim)
            f = {
                "from_lstm": self.from_lstm, "from_mlp": self.from_mlp[i],
                "g_norm": cla(np.linalg.norm(g.ravel())),
                "is_scalar": 1.0 if p.ndim == 0 else -1.0,
                "mean_ms_mag": cla(np.mean(m)), "mean_ms_sign": np.sign(np.mean(m)),
                "mean_rms": cla(np.mean(p)), "mean_sign": np.sign(np.mean(p)),
                "mean_v_mag": cla(np.mean(v)), "mean_v_sign": np.sign(np.mean(v)),
                "norm_weight": cla(np.linalg.norm(p.ravel())),
                "train_loss_feat": train_feat, "valid_loss_feat": valid_feat,
                "var_ms": cla(np.var(m)), "var_rms": cla(np.var(p)), "var_v": cla(np.var(v)),
            }
            for j in range(4):
                f[f"shape_{j}"] = np.log(shape[j]) - 1.0
            rows.append(np.concatenate([np.atleast_1d(f[k]) for k in sorted(f)]))
        x = np.stack(rows)
        assert x.shape[1] == 52
        # 5. LSTM (Haiku convention) + heads
        z = np.concatenate([x, self.h], 1) @ th["rnn_params/rnn/linear/w"] + th["rnn_params/rnn/linear/b"]
        gi, gg, gf, go = np.split(z, 4, axis=1)
        self.c = sigmoid(gf + 1) * self.c + sigmoid(gi) * np.tanh(gg)
        self.h = sigmoid(go) * np.tanh(self.c)
        cond = self.h @ th["rnn_to_ff_params/rnn_to_ff/w"] + th["rnn_to_ff_params/rnn_to_ff/b"]
        next_from_lstm = np.mean(self.h @ th["rnn_to_in_params/rnn_to_in/w"]
                                 + th["rnn_to_in_params/rnn_to_in/b"], axis=0)
        # 6./7. full per-parameter MLP on all 54 inputs
        steps, msgs = [], []
        for i, (p, g, m, v) in enumerate(zip(self.params, gs, self.m, self.v)):
            n = p.size
            rsqrt = 1.0 / np.sqrt(v.reshape(n, 5) + 1e-6)
            cols = {
                "flat_g": g.reshape(n, 1), "flat_v": p.reshape(n, 1),
                "log_abs_v": np.log(np.abs(p.reshape(n, 1)) + 1e-8),
                "m": m.reshape(n, 5), "rms": v.reshape(n, 5),
                "rms_scaled_g": m.reshape(n, 5) * rsqrt, "rsqrt": rsqrt,
            }
            el = np.concatenate([cols[k] for k in sorted(cols)], axis=1)
            el = el / np.sqrt(1e-5 + np.mean(el ** 2, axis=0, keepdims=True))
            const = np.concatenate([
                np.sin(self.it / (TIMESCALES * np.pi)),
                [np.log(len(self.params)) - 1.0],
                [np.log(np.linalg.norm(p.ravel()) + 1e-8)],
                [np.log(n)],
                cond[i],
            ])
            inp = np.concatenate([el, np.tile(const, (n, 1))], axis=1)
            assert inp.shape[1] == 54
            pre = "ffmod_params/mlp/~/linear_"
            h1 = np.maximum(inp @ th[pre + "0/w"] + th[pre + "0/b"], 0)
            h2 = np.maximum(h1 @ th[pre + "1/w"] + th[pre + "1/b"], 0)
            out = h2 @ th[pre + "2/w"] + th[pre + "2/b"]
            step = out[:, 0] * np.exp(out[:, 1] * 0.001) * 0.001
            steps.append(step.reshape(p.shape))
            msgs.append(np.mean(out[:, 2:], axis=0))
        self.params = [p - s for p, s in zip(self.params, steps)]
        self.from_mlp = np.stack(msgs)
        self.from_lstm = next_from_lstm
        self.it += 1
        return [-s for s in steps]


def _random_theta(seed):
    """Random θ with nonzero biases / initial states, so every path is exercised."""
    theta = H.init(jax.random.PRNGKey(seed))
    leaves, treedef = jax.tree_util.tree_flatten(theta)
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), len(leaves))
    leaves = [l + 0.3 * jax.random.normal(k, l.shape) if l.ndim < 2 or l.shape[0] == 1 else l
              for l, k in zip(leaves, keys)]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def test_step_matches_numpy_reference():
    rng = np.random.default_rng(0)
    params = {"b": rng.normal(size=(7,)).astype(np.float32),
              "s": np.float32(0.7),
              "w": rng.normal(size=(5, 7)).astype(np.float32),
              "k": rng.normal(size=(3, 3, 2, 4)).astype(np.float32)}
    theta = _random_theta(3)
    ref = NumpyReference(R.to_reference(theta), jax.tree_util.tree_leaves(params))
    state = H.init_state(theta, params)
    step = jax.jit(H.update)
    for t in range(6):
        grads = jax.tree_util.tree_map(
            lambda p: (rng.normal(size=np.shape(p)) * 0.5).astype(np.float32), params)
        loss = np.float32(2.0 - 0.1 * t + 0.05 * rng.normal())
        updates, state = step(theta, grads, state, params, loss)
        ref_updates = ref.step(jax.tree_util.tree_leaves(grads), float(loss))
        for u, r in zip(jax.tree_util.tree_leaves(updates), ref_updates):
            scale = np.max(np.abs(r))
            assert scale > 0
            np.testing.assert_allclose(np.asarray(u, np.float64), r, rtol=1e-4, atol=1e-5 * scale)
        np.testing.assert_allclose(np.asarray(state.from_mlp), ref.from_mlp, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(state.from_lstm), ref.from_lstm, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(state.lstm_hidden), ref.h, rtol=1e-5, atol=1e-6)
        params = jax.tree_util.tree_map(lambda p, u: np.asarray(p + u), params, updates)
        ref.params = [np.asarray(p, np.float64) for p in jax.tree_util.tree_leaves(params)]
        if t % 2 == 1:
            vloss = np.float32(2.5 + 0.1 * t)
            state = H.observe_validation(state, vloss)
            ref.observe_validation(float(vloss))
