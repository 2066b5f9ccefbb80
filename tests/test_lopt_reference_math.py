"""The optimised JAX step agrees with a straightforward numpy re-implementation.

The numpy code below is transcribed with the reference implementation's own
names (learned_optimization `RNNMLPLOpt`: `ms` momentum, `rms` second
moments, `v` parameter value) in the reference layout:
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

from lopt_trainer.optimizer import features as F
from lopt_trainer.optimizer import hierarchical as H
from lopt_trainer.theta import reference_io as R

DECAYS = np.array([0.5, 0.9, 0.99, 0.999, 0.9999])
TIMESCALES = np.array([1, 3, 10, 30, 100, 300, 1e3, 3e3, 1e4, 3e4, 1e5])


def cla(x):
    return np.clip(np.log(1e-8 + np.abs(x)), -5.0, 5.0)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class NumpyReference:
    """One problem's optimizer state and step, transcribed with the reference's names (float64).

    Names follow learned_optimization's `RNNMLPLOpt`: `ms` are the momentum
    accumulators and `rms` the second-moment accumulators (both `p.shape + (K,)`),
    `v` is the parameter value, `g` the clipped gradient.  The LSTM inputs are
    built by `lstm_features_for_tensor` and the MLP inputs by
    `mlp_features_for_tensor`, each from a dict keyed by the reference's
    feature names and concatenated in sorted-name order.
    """

    def __init__(self, ref_theta, params):
        self.th = {k: np.asarray(v, np.float64) for k, v in ref_theta.items()}
        self.params = [np.asarray(p, np.float64) for p in params]
        n = len(params)
        self.ms = [np.zeros(p.shape + (5,)) for p in params]
        self.rms = [np.zeros(p.shape + (5,)) for p in params]
        self.iteration = 0
        self.h = np.repeat(self.th["lstm_init_state/hidden"], n, axis=0)
        self.c = np.repeat(self.th["lstm_init_state/cell"], n, axis=0)
        self.from_mlp = np.repeat(self.th["initial_from_mlp"][None], n, axis=0)
        self.from_lstm = self.th["initial_from_lstm"].copy()
        self.train_loss_accum = [0.0, 0.0, 0]  # mean, var, updates
        self.valid_loss_accum = [0.0, 0.0, 0]
        self.dynamic_clip = [1, 0.01]  # iteration, value

    @staticmethod
    def _next_state(acc, loss, decay):
        mean = decay * acc[0] + (1 - decay) * loss
        var = decay * acc[1] + (1 - decay) * (mean - loss) ** 2
        return [mean, var, acc[2] + 1]

    @staticmethod
    def _weight_loss(acc, loss, decay):
        c = 1.0 / (1.0 - decay ** acc[2] + 1e-8)
        return np.clip((loss - acc[0] * c) / np.sqrt(acc[1] * c + 1e-8), -5, 5)

    @staticmethod
    def _corrected_mean(acc, decay):
        return acc[0] / (1.0 - decay ** acc[2] + 1e-8)

    def observe_validation(self, loss):
        # Our default keeps the iteration (the reference's valid path advances it).
        self.valid_loss_accum = self._next_state(self.valid_loss_accum, loss, 0.95)

    def lstm_features_for_tensor(self, ms, rms, g, v, from_mlp, train_loss_feat, valid_loss_feat):
        inputs = {}
        mean_ms = np.mean(ms)
        inputs["mean_ms_mag"] = cla(mean_ms)
        inputs["mean_ms_sign"] = np.sign(mean_ms)
        inputs["var_ms"] = cla(np.mean(np.square(ms - mean_ms)))
        mean_rms = np.mean(rms)
        inputs["mean_rms"] = cla(mean_rms)
        inputs["mean_sign"] = np.sign(mean_rms)
        inputs["var_rms"] = cla(np.mean(np.square(rms - mean_rms)))
        mean_v = np.mean(v)
        inputs["mean_v_mag"] = cla(mean_v)
        inputs["mean_v_sign"] = np.sign(mean_v)
        inputs["var_v"] = cla(np.mean(np.square(v - mean_v)))
        inputs["norm_weight"] = cla(np.linalg.norm(v.ravel()))
        inputs["g_norm"] = cla(np.linalg.norm(g.ravel()))
        inputs["is_scalar"] = 1.0 if v.ndim == 0 else -1.0
        shape_stack = np.asarray(v.shape + (1,) * (4 - v.ndim), np.float64)
        for j in range(4):
            inputs[f"shape_{j}"] = np.log(shape_stack)[j] - 1.0
        inputs["train_loss_feat"] = train_loss_feat
        inputs["valid_loss_feat"] = valid_loss_feat
        inputs["from_mlp"] = from_mlp
        inputs["from_lstm"] = self.from_lstm
        return np.concatenate([np.atleast_1d(inputs[k]) for k in sorted(inputs)])

    def mlp_features_for_tensor(self, ms, rms, g, v, ff_inputs, num_tensors):
        n = v.size
        flat_g = g.reshape(n, 1)
        rms = rms.reshape(n, 5)
        m = ms.reshape(n, 5)
        rsqrt = 1.0 / np.sqrt(rms + 1e-6)
        flat_v = v.reshape(n, 1)
        inps = {"flat_g": flat_g, "flat_v": flat_v, "log_abs_v": np.log(np.abs(flat_v) + 1e-8),
                "m": m, "rms_scaled_g": m * rsqrt, "rms": rms, "rsqrt": rsqrt}
        inp = np.concatenate([inps[k] for k in sorted(inps)], axis=1)
        inp = inp / np.sqrt(1e-5 + np.mean(np.square(inp), axis=0, keepdims=True))
        step = np.sin(self.iteration / (TIMESCALES * np.pi))
        per_tensor = np.concatenate([
            step, [np.log(float(num_tensors)) - 1.0], [np.log(np.linalg.norm(flat_v) + 1e-8)],
            [np.log(float(n))], ff_inputs])
        return np.concatenate([inp, np.tile(per_tensor, (n, 1))], axis=1)

    def step(self, grads, loss):
        th = self.th
        self.train_loss_accum = self._next_state(self.train_loss_accum, loss, 0.9)
        train_loss_feat = self._weight_loss(self.train_loss_accum, loss, 0.9)
        valid_loss_feat = self._weight_loss(
            self.train_loss_accum, self._corrected_mean(self.valid_loss_accum, 0.95), 0.9)
        # dynamic gradient clipping (statistic of the clipped gradients)
        t, snd = self.dynamic_clip
        clip_amount = snd / (1 - 0.99 ** t) * 10.0
        gs = [np.clip(np.asarray(g, np.float64), -clip_amount, clip_amount) for g in grads]
        avg_squared_mean = np.mean([np.mean(np.square(g)) for g in gs])
        self.dynamic_clip = [t + 1, snd * 0.99 + np.sqrt(1e-8 + avg_squared_mean) * 0.01]
        self.ms = [DECAYS * m + (1 - DECAYS) * g[..., None] for m, g in zip(self.ms, gs)]
        self.rms = [DECAYS * r + (1 - DECAYS) * np.square(g)[..., None] for r, g in zip(self.rms, gs)]
        rnn_inputs = np.stack([
            self.lstm_features_for_tensor(ms, rms, g, v, fm, train_loss_feat, valid_loss_feat)
            for ms, rms, g, v, fm in zip(self.ms, self.rms, gs, self.params, self.from_mlp)])
        assert rnn_inputs.shape[1] == 52
        # Haiku LSTM: [x, h] @ w + b split into (i, g, f, o); forget bias +1
        z = np.concatenate([rnn_inputs, self.h], 1) @ th["rnn_params/rnn/linear/w"] \
            + th["rnn_params/rnn/linear/b"]
        gi, gg, gf, go = np.split(z, 4, axis=1)
        self.c = sigmoid(gf + 1) * self.c + sigmoid(gi) * np.tanh(gg)
        self.h = sigmoid(go) * np.tanh(self.c)
        new_from_lstm = np.mean(self.h @ th["rnn_to_in_params/rnn_to_in/w"]
                                + th["rnn_to_in_params/rnn_to_in/b"], axis=0)
        ff_inputs = self.h @ th["rnn_to_ff_params/rnn_to_ff/w"] + th["rnn_to_ff_params/rnn_to_ff/b"]
        steps, from_mlp = [], []
        for i, (ms, rms, g, v) in enumerate(zip(self.ms, self.rms, gs, self.params)):
            feats = self.mlp_features_for_tensor(ms, rms, g, v, ff_inputs[i], len(self.params))
            assert feats.shape[1] == 54
            pre = "ffmod_params/mlp/~/linear_"
            h1 = np.maximum(feats @ th[pre + "0/w"] + th[pre + "0/b"], 0)
            h2 = np.maximum(h1 @ th[pre + "1/w"] + th[pre + "1/b"], 0)
            o = h2 @ th[pre + "2/w"] + th[pre + "2/b"]
            direction, magnitude = o[:, 0], o[:, 1]
            steps.append((direction * np.exp(magnitude * 0.001) * 0.001).reshape(v.shape))
            from_mlp.append(np.mean(o[:, 2:], axis=0))
        self.params = [v - s for v, s in zip(self.params, steps)]
        self.from_mlp = np.stack(from_mlp)
        self.from_lstm = new_from_lstm
        self.iteration += 1
        return [-s for s in steps]


def _reference_theta(seed):
    """A θ in the reference's own layout and keys (random, nonzero biases and initial states)."""
    rng = np.random.default_rng(seed)
    return {key: (rng.normal(size=shape) / np.sqrt(shape[0] if len(shape) == 2 else 1.0) * 0.7)
            .astype(np.float32) for key, shape in R.reference_shapes().items()}


def test_imported_reference_theta_reproduces_reference_updates(tmp_path):
    """θ written in the reference layout, imported, and run jitted for 8 steps
    (validation losses fed in between) gives the transcription's updates to
    1e-5 of their scale, and the same messages and LSTM state."""
    rng = np.random.default_rng(0)
    params = {"b": rng.normal(size=(7,)).astype(np.float32),
              "s": np.float32(0.7),
              "w": rng.normal(size=(5, 7)).astype(np.float32),
              "k": rng.normal(size=(3, 3, 2, 4)).astype(np.float32)}
    ref_theta = _reference_theta(3)
    np.savez(tmp_path / "theta.npz", **ref_theta)
    theta = R.load_reference_npz(tmp_path / "theta.npz")
    ref = NumpyReference(ref_theta, jax.tree_util.tree_leaves(params))
    state = H.init_state(theta, params)
    step = jax.jit(H.update)
    for t in range(8):
        grads = jax.tree_util.tree_map(
            lambda p: (rng.normal(size=np.shape(p)) * 0.5).astype(np.float32), params)
        loss = np.float32(2.0 - 0.1 * t + 0.05 * rng.normal())
        updates, state = step(theta, grads, state, params, loss)
        ref_updates = ref.step(jax.tree_util.tree_leaves(grads), float(loss))
        for u, r in zip(jax.tree_util.tree_leaves(updates), ref_updates):
            scale = np.max(np.abs(r))
            assert scale > 0
            assert np.max(np.abs(np.asarray(u, np.float64) - r)) <= 1e-5 * scale
        np.testing.assert_allclose(np.asarray(state.from_mlp), ref.from_mlp, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(state.from_lstm), ref.from_lstm, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(state.lstm_hidden), ref.h, rtol=1e-5, atol=1e-6)
        params = jax.tree_util.tree_map(lambda p, u: np.asarray(p + u), params, updates)
        ref.params = [np.asarray(p, np.float64) for p in jax.tree_util.tree_leaves(params)]
        if t % 2 == 1:
            vloss = np.float32(2.5 + 0.1 * t)
            state = H.observe_validation(state, vloss)
            ref.observe_validation(float(vloss))


def test_swapped_statistics_would_be_caught():
    """The transcription distinguishes parameter statistics from second-moment
    statistics: the LSTM input rows named `mean_v_mag` and `mean_rms` differ
    for a tensor whose parameters and second moments have different means."""
    ref = NumpyReference(_reference_theta(0), [np.ones((3,), np.float32) * 4.0])
    ms = np.full((3, 5), 0.1)
    rms = np.full((3, 5), 0.01)
    v = np.full((3,), 4.0)
    feats = ref.lstm_features_for_tensor(ms, rms, np.ones(3), v, np.zeros(16), 0.0, 0.0)
    offset = {}
    start = 0
    for name, width in F.lstm_input_layout(H.DEFAULT_CONFIG):
        offset[name] = start
        start += width
    assert feats[offset["mean_v_mag"]] == cla(4.0)
    assert feats[offset["mean_rms"]] == cla(0.01)
