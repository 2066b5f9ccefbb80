"""Files whose bytes are checked against digests are never converted by git (``core.autocrlf`` on Windows would
turn a frozen suite's LF into CRLF and its digest check would refuse it)."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs a git checkout")
def test_every_digest_checked_data_file_is_not_text_for_git():
    files = subprocess.run(["git", "ls-files", "taskgen/suites", "lopt_trainer/data", "*.jsonl", "*.arrow",
                            "*.npz", "*.msgpack"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    assert any(f.endswith(".jsonl") for f in files) and any(f.endswith(".arrow") for f in files)
    out = subprocess.run(["git", "check-attr", "text", "--", *files], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    converted = [line for line in out if not line.endswith(": text: unset")]
    assert not converted, converted[:5]
