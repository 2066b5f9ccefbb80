"""One run per folder and optional machinery (issue 17, C and D): a folder is locked while a run writes it, an
existing run is never replaced without resume or overwrite, and unwritable caches cost a warning, not the run."""

import json
import os
import signal
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import pytest
from click.testing import CliRunner

from lopt_trainer.common import folder_lock as fl
from lopt_trainer.errors import FolderInUseError, RunExistsError
from lopt_trainer.evaluation import records
from lopt_trainer.evaluation.backends import LocalBackend, make_backend
from lopt_trainer.evaluation.runner import EVAL_FILES, EvaluationExists, run_evaluation
from lopt_trainer.meta import meta_train
from lopt_trainer.meta.trainer import RUN_FILES
from lopt_trainer.optimizer import hierarchical
from taskgen_cli import cli
from tests.meta_helpers import small_quadratic_specs
from tests.test_eval_metrics import SETTINGS, synthetic_tasks
from tests.test_meta_resume import _config

REPO = Path(__file__).resolve().parent.parent
HOLD = ("import sys; from lopt_trainer.common.folder_lock import folder_lock\n"
        "with folder_lock(sys.argv[1]):\n    print('locked', flush=True)\n    sys.stdin.read()\n")


@pytest.fixture
def held(tmp_path):
    """A folder whose lock another process holds (until the fixture ends); yields ``(folder, process)``."""
    folder = tmp_path / "held"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    assert proc.stdout.readline() == "locked\n"
    yield folder, proc
    if proc.poll() is None:
        proc.stdin.close()
        proc.wait(timeout=30)


def _busy(folder, what="run folder") -> str:
    r = fl.holder(folder)
    return (f"{what} {folder} is in use by another process (pid {r['pid']} on {r['host']}, since {r['since']}: "
            f"{r['command']}); wait for it to end or choose another folder")


# ---------------------------------------------------------------- the lock


def test_a_second_process_is_refused_naming_the_holder(held):
    folder, proc = held
    record = fl.holder(folder)
    assert record["pid"] == proc.pid and record["host"] == socket.gethostname()
    with pytest.raises(FolderInUseError) as err:
        with fl.folder_lock(folder):
            pass
    assert str(err.value) == _busy(folder)


def test_a_killed_holder_leaves_no_stale_lock(held):
    folder, proc = held
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with fl.folder_lock(folder):
        assert fl.holder(folder)["pid"] == os.getpid()
    assert (folder / fl.LOCK_FILE).exists()  # never deleted (see the module docstring)


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with fl.folder_lock(tmp_path / "a"):
        with fl.folder_lock(tmp_path / "a"):
            pass
        assert str((tmp_path / "a").resolve()) in fl._held  # still held by the outer block
    assert fl._held == {}


# ---------------------------------------------------------------- meta-training folders


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 2-step run (its own files plus an unrelated one)."""
    from taskgen import write_specs

    root = tmp_path_factory.mktemp("runs")
    write_specs(small_quadratic_specs(4), root / "specs.jsonl")
    meta_train(_config(steps=2, suite=str(root / "specs.jsonl")), root / "run", progress=False)
    (root / "run" / "notes.txt").write_text("mine")
    return root


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_a_finished_run_is_not_replaced_without_resume_or_overwrite(finished_run, tmp_path):
    run = _copy(finished_run / "run", tmp_path / "run")
    before = (run / "checkpoint.msgpack").read_bytes()
    config = _config(steps=2, suite=str(finished_run / "specs.jsonl"))
    with pytest.raises(RunExistsError) as err:
        meta_train(config, run, progress=False)
    assert str(err.value) == (f"{run} already holds a meta-training run (checkpoint.msgpack, checkpoint.prev.msgpack, "
                              "metrics.jsonl); continue it with --resume (resume=True) or start it again with "
                              "--overwrite (overwrite=True)")
    assert (run / "checkpoint.msgpack").read_bytes() == before
    with pytest.raises(ValueError, match="^resume and overwrite exclude each other"):
        meta_train(config, run, resume=True, overwrite=True, progress=False)


def test_overwrite_clears_the_runs_own_files_only(finished_run, tmp_path):
    run = _copy(finished_run / "run", tmp_path / "run")
    (run / "panel").mkdir()
    (run / "meta_loss.png").write_bytes(b"old plot")
    removed = [n for n in RUN_FILES if (run / n).exists()]
    assert removed == ["config.json", "metrics.jsonl", "checkpoint.msgpack", "checkpoint.prev.msgpack", "panel",
                       "meta_loss.png", "summary.json", "scalars.csv", "tensorboard"]
    config = _config(steps=1, suite=str(finished_run / "specs.jsonl"))
    result = meta_train(config, run, overwrite=True, progress=False)
    assert result.state.step == 1
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0]
    assert sorted(p.name for p in run.iterdir()) == [".lock", "checkpoint.msgpack", "checkpoint.prev.msgpack",
                                                     "config.json", "metrics.jsonl", "notes.txt", "scalars.csv",
                                                     "summary.json", "tensorboard"]
    assert (run / "notes.txt").read_text() == "mine"


def test_meta_train_refuses_a_folder_in_use(held, finished_run):
    folder, _ = held
    with pytest.raises(FolderInUseError) as err:
        meta_train(_config(steps=1, suite=str(finished_run / "specs.jsonl")), folder, progress=False)
    assert str(err.value) == _busy(folder)
    assert sorted(p.name for p in folder.iterdir()) == [".lock"]


def test_cli_meta_train_records_its_command_and_refuses_a_second_run(finished_run, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    out = tmp_path / "cli_run"
    args = ["lopt", "meta-train", "--preset", "quick", "--suite", str(finished_run / "specs.jsonl"),
            "--filter", "family=quadratic", "--set", "lopt=\"tests.meta_helpers:tiny_lopt\"", "--set",
            "truncation=10", "--set", "tasks_per_group=4", "--set", "horizon=\"constant\"", "--set",
            "horizon_min=40", "--set", "horizon_max=40", "--set", "eval_every=0", "--set",
            "compilation_cache=\"\"", "--steps", "1", "--out",
            str(out), "--no-progress"]
    monkeypatch.setattr(sys, "argv", ["taskgen", *args])
    ok = CliRunner().invoke(cli, args)
    assert ok.exit_code == 0, ok.output
    command = json.loads((out / "command.json").read_text())
    assert command["argv"][-5:] == ["--steps", "1", "--out", str(out), "--no-progress"]
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 1
    assert again.stderr.splitlines()[0].startswith("meta-train settings (preset quick;")  # then the one error line
    assert again.stderr.splitlines()[-1] == (f"Error: {out} already holds a meta-training run (checkpoint.msgpack, "
                                             "metrics.jsonl); continue it with --resume (resume=True) or start it "
                                             "again with --overwrite (overwrite=True)")
    both = CliRunner().invoke(cli, args + ["--resume", "--overwrite"])
    assert both.exit_code == 2 and both.output.endswith(
        "Error: --resume and --overwrite exclude each other: continue the run or start it again\n")


# ---------------------------------------------------------------- evaluation folders


@pytest.fixture(scope="module")
def theta():
    return hierarchical.init(jax.random.PRNGKey(0))


def test_an_evaluation_is_not_replaced_without_resume_or_overwrite(theta, tmp_path):
    out = tmp_path / "ev"
    run_evaluation(theta, synthetic_tasks(), out, SETTINGS, progress=False, baselines_from=False)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(EvaluationExists) as err:
        run_evaluation(theta, synthetic_tasks(), out, SETTINGS, progress=False, baselines_from=False)
    assert isinstance(err.value, RunExistsError)
    assert str(err.value) == (f"{out} already holds an evaluation (runs/); reuse its runs with --resume "
                              "(resume=True) or start it again with --overwrite (overwrite=True)")
    (out / "command.json").write_text("{}")
    own = sorted(n for n in EVAL_FILES if (out / n).exists())
    assert own == sorted(["eval.json", "runs", "results.arrow", "eval_summary.json", "timing.json",
                          "boxplot_final.png", "boxplot_auc.png", "command.json"])
    stale = out / "runs" / "stale.json"
    stale.write_text("{}")
    run_evaluation(theta, synthetic_tasks(), out, SETTINGS, progress=False, baselines_from=False, overwrite=True)
    assert not stale.exists() and not (out / "command.json").exists() and (out / "notes.txt").exists()


def test_an_evaluation_refuses_a_folder_in_use(held, theta):
    folder, _ = held
    with pytest.raises(FolderInUseError) as err:
        run_evaluation(theta, synthetic_tasks(), folder, SETTINGS, progress=False, baselines_from=False)
    assert str(err.value) == _busy(folder, "evaluation folder")


# ---------------------------------------------------------------- D: optional machinery


def test_an_unwritable_baseline_cache_warns_once_and_the_evaluation_goes_on(theta, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = blocker / "baselines.arrow"  # its folder cannot be made: a regular file is in the way
    monkeypatch.setenv("TASKGEN_BASELINE_CACHE", str(cache))
    monkeypatch.setattr(records, "_warned_unwritable", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = run_evaluation(theta, synthetic_tasks(), tmp_path / "ev", SETTINGS, progress=False)
    messages = [str(w.message) for w in caught if "baseline cache" in str(w.message)]
    assert messages == [f"baseline cache {cache} cannot be written (File exists at {blocker}); going on without "
                        "caching baselines (set TASKGEN_BASELINE_CACHE to a writable file path)"]
    assert summary["units_run"] == 8 and (tmp_path / "ev" / "results.arrow").is_file()


def test_a_read_only_baseline_cache_lock_warns_and_the_evaluation_goes_on(theta, tmp_path, monkeypatch):
    import errno

    cache = tmp_path / "ro" / "baselines.arrow"

    def read_only(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path.with_name(path.name + ".lock")))

    monkeypatch.setattr(records, "_locked", read_only)
    monkeypatch.setattr(records, "_warned_unwritable", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_evaluation(theta, synthetic_tasks(), tmp_path / "ev", SETTINGS, progress=False, baselines_from=cache)
    messages = [str(w.message) for w in caught if "baseline cache" in str(w.message)]
    assert messages == [f"baseline cache {cache} cannot be written (Read-only file system at {cache}.lock); going "
                        "on without caching baselines (set TASKGEN_BASELINE_CACHE to a writable file path)"]


def test_an_unwritable_ray_session_directory_runs_in_process(tmp_path, monkeypatch):
    from lopt_trainer.common import ray_local

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("RAY_TMPDIR", str(blocker))
    monkeypatch.setattr(ray_local, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backend = make_backend(2)
        assert ray_local.local_ray_usable() is False
    assert isinstance(backend, LocalBackend)
    assert [str(w.message) for w in caught] == [
        f"Ray session directory {blocker}/ray: Not a directory; running the workers' work in this process (set "
        "RAY_TMPDIR to a short, writable directory such as /tmp to use Ray workers)"]
    assert ray_local.local_ray_usable("ray://elsewhere:10001") is True


def test_a_tmpdir_too_long_for_rays_sockets_runs_in_process_and_says_why(tmp_path, monkeypatch):
    """An 80-character TMPDIR (cluster job folders) made Ray fail on its socket path, blaming the run folder."""
    from lopt_trainer.common import ray_local

    long_dir = tmp_path / ("j" * max(1, 80 - len(str(tmp_path)) - 1))
    long_dir.mkdir()
    assert len(str(long_dir)) >= 80
    monkeypatch.delenv("RAY_TMPDIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(long_dir))
    monkeypatch.setattr(ray_local, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert isinstance(make_backend(2), LocalBackend)
    (message,) = [str(w.message) for w in caught]
    assert "too long for Ray's sockets" in message and "TMPDIR" in message and "RAY_TMPDIR" in message
    assert ray_local.socket_path_problem("/tmp/ray") is None
