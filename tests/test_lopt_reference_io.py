"""θ interchange with the reference implementation's `.npz` layout."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import numpy as np
import pytest

from lopt_trainer.optimizer import hierarchical as H
from lopt_trainer.theta import reference_io as R

EXPECTED = {
    "initial_from_lstm": (18,), "initial_from_mlp": (16,),
    "lstm_init_state/hidden": (1, 64), "lstm_init_state/cell": (1, 64),
    "rnn_params/rnn/linear/w": (116, 256), "rnn_params/rnn/linear/b": (256,),
    "rnn_to_ff_params/rnn_to_ff/w": (64, 17), "rnn_to_ff_params/rnn_to_ff/b": (17,),
    "rnn_to_in_params/rnn_to_in/w": (64, 18), "rnn_to_in_params/rnn_to_in/b": (18,),
    "ffmod_params/mlp/~/linear_0/w": (54, 32), "ffmod_params/mlp/~/linear_0/b": (32,),
    "ffmod_params/mlp/~/linear_1/w": (32, 32), "ffmod_params/mlp/~/linear_1/b": (32,),
    "ffmod_params/mlp/~/linear_2/w": (32, 18), "ffmod_params/mlp/~/linear_2/b": (18,),
}


def _theta():
    theta = H.init(jax.random.PRNGKey(7))
    # make every array distinctive (biases and initial states are zeros at init)
    leaves, treedef = jax.tree_util.tree_flatten(theta)
    keys = jax.random.split(jax.random.PRNGKey(8), len(leaves))
    return treedef.unflatten([l + jax.random.normal(k, l.shape) for l, k in zip(leaves, keys)])


def test_keys_and_shapes_match_the_reference_table(tmp_path):
    path = tmp_path / "theta.npz"
    R.save_reference_npz(_theta(), path)
    with np.load(path, allow_pickle=False) as data:
        got = {k: data[k].shape for k in data.files}
        assert all(data[k].dtype == np.float32 for k in data.files)
    assert got == EXPECTED
    assert R.reference_shapes() == EXPECTED


def test_round_trip_is_byte_exact(tmp_path):
    theta = _theta()
    path = tmp_path / "theta.npz"
    R.save_reference_npz(theta, path)
    back = R.load_reference_npz(path)
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(theta)
    for a, b in zip(jax.tree_util.tree_leaves(theta), jax.tree_util.tree_leaves(back)):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    # and the file itself is deterministic: saving the loaded θ gives the same bytes
    path2 = tmp_path / "again.npz"
    R.save_reference_npz(back, path2)
    assert path.read_bytes() == path2.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["again.npz", "theta.npz"]  # no temp files left


def test_reference_layout_rows_map_to_our_theta():
    theta = _theta()
    ref = R.to_reference(theta)
    np.testing.assert_array_equal(ref["rnn_params/rnn/linear/w"], theta["lstm"]["w"])
    np.testing.assert_array_equal(ref["ffmod_params/mlp/~/linear_0/w"], theta["mlp"]["w0"])
    np.testing.assert_array_equal(ref["lstm_init_state/cell"], theta["lstm"]["init_cell"])


def test_load_rejects_bad_files(tmp_path):
    arrays = R.to_reference(_theta())
    bad = dict(arrays)
    bad["ffmod_params/mlp/~/linear_0/w"] = np.zeros((53, 32), np.float32)
    np.savez(tmp_path / "shape.npz", **bad)
    with pytest.raises(ValueError, match="linear_0/w"):
        R.load_reference_npz(tmp_path / "shape.npz")
    missing = dict(arrays)
    del missing["initial_from_mlp"]
    np.savez(tmp_path / "missing.npz", **missing)
    with pytest.raises(ValueError, match="initial_from_mlp"):
        R.load_reference_npz(tmp_path / "missing.npz")
    pickled = dict(arrays)
    pickled["initial_from_mlp"] = np.array([{"evil": 1}] * 16, dtype=object)
    np.savez(tmp_path / "pickle.npz", **pickled)
    with pytest.raises(ValueError):
        R.load_reference_npz(tmp_path / "pickle.npz")
