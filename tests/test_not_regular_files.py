"""Inputs that never end or are not files (a device, a FIFO) are refused at once, by name, for every reader of a
user's path: spec files, manifests, θ files, checkpoints, config files."""

import os
import subprocess
import sys

import pytest

from taskgen.specfile import NotRegularFileError, check_regular_file, read_file_bytes


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.jsonl"
    os.mkfifo(path)
    return path


def test_the_check_names_the_kind_without_opening(fifo, tmp_path):
    with pytest.raises(NotRegularFileError, match="pipe.jsonl: is a FIFO"):
        check_regular_file(fifo)  # would block forever if it opened the FIFO
    with pytest.raises(NotRegularFileError, match="/dev/zero: is a character device"):
        read_file_bytes("/dev/zero")
    with pytest.raises(IsADirectoryError):
        read_file_bytes(tmp_path)
    (tmp_path / "f").write_bytes(b"ok")
    assert read_file_bytes(tmp_path / "f") == b"ok"


def _taskgen(*args):
    code = "import sys; from taskgen_cli import main; sys.argv = ['taskgen', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))


@pytest.mark.parametrize("args", [
    ["list", "--suite", "{fifo}"], ["list", "--manifest", "{fifo}"], ["show", "x", "--suite", "{fifo}"],
    ["list", "--suite", "/dev/zero"], ["list", "--manifest", "/dev/urandom"],
    ["lopt", "meta-train", "--config", "/dev/null", "--out", "{tmp}/r", "--steps", "1"],
    ["lopt", "interpolate", "--to", "/dev/zero", "--alpha", "0.5", "--out", "{tmp}/x.npz"],
    ["lopt", "interpolate", "--to", "{fifo}.npz", "--alpha", "0.5", "--out", "{tmp}/x.npz"],
], ids=["list-suite-fifo", "list-manifest-fifo", "show-fifo", "list-dev-zero", "manifest-urandom",
        "config-dev-null", "theta-dev-zero", "theta-fifo"])
def test_commands_refuse_at_once_in_one_line(args, fifo, tmp_path):
    os.mkfifo(f"{fifo}.npz")
    res = _taskgen(*[a.format(fifo=fifo, tmp=tmp_path) for a in args])
    assert res.returncode in (1, 2), res.stderr
    assert "not a regular file" in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "x.npz").exists() and not (tmp_path / "r").exists()


def test_load_specs_refuses_a_fifo(fifo):
    import taskgen

    with pytest.raises(NotRegularFileError, match="is a FIFO"):
        taskgen.load_specs(fifo)
