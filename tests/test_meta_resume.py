"""Resuming and reading back (issue 11, B, D, E): changed settings and task lists are refused, damaged
checkpoints and θ files give one error naming the file, the previous checkpoint is kept and used."""

import re
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

from lopt_trainer.optimizer import hierarchical as H
from lopt_trainer.errors import CheckpointError, ResumeError, ThetaFileError
from lopt_trainer.meta import MetaTrainConfig, meta_train
from lopt_trainer.common import checkpoint as ckpt
from lopt_trainer.theta.load import load_theta, warm_start_theta
from lopt_trainer.theta.reference_io import load_reference_npz, save_reference_npz
from tests.meta_helpers import small_quadratic_specs


def _config(**kw):
    base = dict(lopt="tests.meta_helpers:tiny_lopt", truncation=10, tasks_per_group=4, num_groups=1,
                horizon="constant", horizon_min=40, horizon_max=40, resample_every=20, eval_every=0,
                checkpoint_every=1, valid_every=5, outer_lr=0.05, sigma=0.05, compilation_cache="",
                filters={"family": ["quadratic"]})
    base.update(kw)
    return MetaTrainConfig(**base)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 2-step run made from a spec file (so both checkpoints exist)."""
    from taskgen import write_specs

    root = tmp_path_factory.mktemp("resume")
    write_specs(small_quadratic_specs(4), root / "specs.jsonl")
    meta_train(_config(steps=2, suite=str(root / "specs.jsonl")), root / "run", progress=False)
    return root


# ---------------------------------------------------------------- E: settings


def test_resume_with_other_settings_is_refused_listing_each(run):
    given = _config(steps=3, suite=str(run / "specs.jsonl"), sigma=0.5, estimator="es")
    with pytest.raises(ResumeError) as err:
        meta_train(given, run / "run", resume=True, progress=False)
    assert str(err.value) == (
        f"run {run / 'run'}: --resume with settings other than the run's (estimator: stored 'pes', given 'es'; "
        f"sigma: stored 0.05, given 0.5); estimator, sigma cannot change mid-run; start a new run (warm-started "
        f"from this one with --init-theta {run / 'run'} if you like) or drop these settings")


def test_recipe_settings_of_the_outer_step_cannot_change_mid_run(run):
    # what the outer step follows: which families a step holds and how their meta-gradients combine
    for setting, value in (("family_draw", "stratified"), ("grad_combine", "unit")):
        given = _config(steps=3, suite=str(run / "specs.jsonl"), **{setting: value})
        with pytest.raises(ResumeError, match=f"{setting} cannot change mid-run"):
            meta_train(given, run / "run", resume=True, progress=False, allow_change=True)


def test_safe_settings_change_only_with_allow_change(run, tmp_path):
    import shutil

    shutil.copytree(run / "run", tmp_path / "run")
    given = _config(steps=3, suite=str(run / "specs.jsonl"), eval_every=7)
    with pytest.raises(ResumeError, match=re.escape("(eval_every: stored 0, given 7); pass --allow-change to "
                                                    "change them (safe mid-run: plugins, panel_every, panel, checkpoint_every,")):
        meta_train(given, tmp_path / "run", resume=True, progress=False)
    with pytest.raises(ResumeError, match="sigma cannot change mid-run"):
        meta_train(_config(steps=3, suite=str(run / "specs.jsonl"), eval_every=7, sigma=0.1), tmp_path / "run",
                   resume=True, progress=False, allow_change=True)
    result = meta_train(given, tmp_path / "run", resume=True, progress=False, allow_change=True)
    assert result.state.step == 3
    assert '"eval_every": 7' in (tmp_path / "run" / "config.json").read_text()


def test_cli_resume_compares_only_the_settings_given(run, tmp_path):
    import shutil

    from lopt_trainer.app.cli import lopt

    shutil.copytree(run / "run", tmp_path / "run")
    args = ["meta-train", "--suite", str(run / "specs.jsonl"), "--filter", "family=quadratic", "--out",
            str(tmp_path / "run"), "--resume", "--no-progress", "--steps", "2"]
    ok = CliRunner().invoke(lopt, args)  # defaults differ from the run's (lopt, truncation, ...) but were not given
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(lopt, args + ["--set", "sigma=0.5", "--set", "estimator=es"])
    assert isinstance(bad.exception, ResumeError)
    assert "(estimator: stored 'pes', given 'es'; sigma: stored 0.05, given 0.5)" in str(bad.exception)


# ---------------------------------------------------------------- D: task list


def test_resume_after_the_spec_file_was_replaced_is_refused(run, tmp_path):
    import shutil

    from taskgen import write_specs

    shutil.copytree(run / "run", tmp_path / "run")
    spec_file = tmp_path / "specs.jsonl"
    write_specs(small_quadratic_specs(4), spec_file)
    meta_train(_config(steps=1, suite=str(spec_file)), tmp_path / "fresh", progress=False)
    write_specs(small_quadratic_specs(3, dims=5), spec_file)  # replaced at the same path
    with pytest.raises(ResumeError) as err:
        meta_train(_config(steps=2, suite=str(spec_file)), tmp_path / "fresh", resume=True, progress=False)
    assert str(err.value).startswith(
        f"run {tmp_path / 'fresh'}: its task list changed since the checkpoint: {spec_file} now selects other "
        "training tasks (3 now, 4 in the checkpoint); restore the file the run was made with")


# ---------------------------------------------------------------- D: damaged checkpoints


def _tiny_checkpoint(run_dir, step, theta=None):
    ckpt.save_checkpoint(run_dir, step=step, theta=theta or {"a": np.arange(3, dtype=np.float32)},
                         outer_state={}, estimators=[], sampler_json="{}", config_json="{}")


@pytest.mark.parametrize("damage", [b"", b"\x00\x01garbage\xff" * 7, "truncate"],
                         ids=["empty", "random-bytes", "truncated"])
def test_damaged_checkpoint_falls_back_to_the_previous_one(tmp_path, damage):
    _tiny_checkpoint(tmp_path, 1)
    _tiny_checkpoint(tmp_path, 2)
    path = tmp_path / ckpt.FILENAME
    assert (tmp_path / ckpt.PREVIOUS).exists()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else damage)
    with pytest.warns(UserWarning, match=re.escape(f"checkpoint {path}: damaged (")) as rec:
        raw = ckpt.load_checkpoint(tmp_path)
    assert raw["step"] == 1
    assert f"resuming from the previous checkpoint {tmp_path / ckpt.PREVIOUS} (step 1)" in str(rec[0].message)


def test_damaged_checkpoint_without_a_previous_one_is_one_clear_error(tmp_path):
    _tiny_checkpoint(tmp_path, 1)
    (tmp_path / ckpt.FILENAME).write_bytes(b"")
    with pytest.raises(CheckpointError) as err:
        ckpt.load_checkpoint(tmp_path)
    assert str(err.value) == (f"checkpoint {tmp_path / ckpt.FILENAME}: damaged (empty file); no previous "
                              f"checkpoint is kept: start the run again (delete {tmp_path} or choose another "
                              "--out)")
    _tiny_checkpoint(tmp_path, 2)  # rotates the damaged file to .prev
    (tmp_path / ckpt.FILENAME).write_bytes(b"\x92\x01\x02")  # a valid msgpack list, not a checkpoint
    with pytest.raises(CheckpointError, match=r"damaged \(not a lopt-meta-checkpoint file\); the previous one "
                                              r"is damaged too \(checkpoint .*: damaged \(empty file\)\)"):
        ckpt.load_checkpoint(tmp_path)


def test_checkpoint_without_a_field_added_later_restores_from_the_template():
    theta = H.init(jax.random.PRNGKey(0))
    template = H.init_state(theta, {"w": jnp.ones((2, 3))})
    import flax.serialization as fser

    old = fser.to_state_dict(template)
    del old["nonfinite_losses"]
    restored = ckpt.restore_tree(template, old)
    assert int(restored.nonfinite_losses) == 0


# ---------------------------------------------------------------- B: θ files


@pytest.fixture(scope="module")
def theta_npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("theta") / "theta.npz"
    save_reference_npz(H.init(jax.random.PRNGKey(1)), path)
    return path


def test_truncated_theta_npz_is_named(theta_npz, tmp_path):
    bad = tmp_path / "cut.npz"
    bad.write_bytes(theta_npz.read_bytes()[:5000])
    with pytest.raises(ThetaFileError, match=r"^θ file " + re.escape(str(bad)) + r": damaged or not an \.npz "
                                             r"archive \(.*\); restore it or export θ again$"):
        load_reference_npz(bad)


def test_nonfinite_theta_npz_names_the_first_bad_array(theta_npz, tmp_path):
    with np.load(theta_npz) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["rnn_to_ff_params/rnn_to_ff/b"][3] = np.nan
    arrays["rnn_params/rnn/linear/b"][0] = np.inf
    bad = tmp_path / "nan.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ThetaFileError) as err:
        load_reference_npz(bad)
    assert str(err.value) == (f"θ file {bad}: array 'rnn_params/rnn/linear/b' holds 1 non-finite value(s) "
                              "(NaN or inf); use another θ (e.g. an earlier checkpoint)")


def test_theta_npz_of_other_sizes_is_named(theta_npz):
    small = H.LOptConfig(lstm_hidden=8)
    with pytest.raises(ThetaFileError, match=r"^θ file " + re.escape(str(theta_npz)) + r": reference θ key "
                                             r"'lstm_init_state/hidden' has shape \(1, 64\), expected \(1, 8\)$"):
        load_reference_npz(theta_npz, small)


def test_checkpoint_theta_is_checked_for_finiteness_and_sizes(tmp_path):
    _tiny_checkpoint(tmp_path, 1, theta={"a": np.asarray([0.0, np.nan], np.float32)})
    with pytest.raises(ThetaFileError, match=r"^θ file " + re.escape(str(tmp_path / ckpt.FILENAME)) +
                       r": array 'a' holds 1 non-finite value\(s\)"):
        load_theta(tmp_path)
    _tiny_checkpoint(tmp_path, 2, theta={"a": np.zeros((2,), np.float32)})
    template = {"a": jax.ShapeDtypeStruct((3,), jnp.float32)}
    with pytest.raises(ThetaFileError, match=r": does not match this learned optimizer: array 'a' has shape "
                                             r"\(2,\), its config needs \(3,\)$"):
        warm_start_theta(template, tmp_path / ckpt.FILENAME)


def test_zipfile_error_is_not_leaked(theta_npz, tmp_path):
    bad = tmp_path / "zip.npz"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(ThetaFileError):
        load_reference_npz(bad)
    assert issubclass(ThetaFileError, ValueError) and not issubclass(ThetaFileError, zipfile.BadZipFile)
