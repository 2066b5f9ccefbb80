"""A portable pretraining state: a small directory, meant to be committed, from which ``make pretrain`` goes on.

A run folder's checkpoint holds everything to continue bit for bit, but most of it is the estimators' inner
states (every slot's problem parameters and learned-optimizer state: megabytes). A *portable state* keeps only
what θ's training needs to go on: θ, the outer optimizer's state, the task sampler's state (which group and tasks
each estimator holds, when it drew them) and the outer step, plus the run's settings and a history of the
sessions that made it. A few hundred KB for the hierarchical optimizer (θ ~36k floats, Adam's two moments).

Layout of the directory (every file written by :func:`export_state`, the directory replaced as a whole):

* ``state.msgpack``: ``format``, ``version``, ``step``, ``theta``, ``outer_state``, ``sampler`` (JSON text),
  ``tasks_digest``, ``tasks_count`` (flax msgpack, exact array bytes; no pickle).
* ``config.json``: the run's settings (:class:`~lopt_trainer.meta.config.MetaTrainConfig`, as in
  ``RUN/config.json``).
* ``history.json``: a JSON list of sessions, oldest first: ``steps_from``, ``steps_to``, ``steps``,
  ``wall_seconds`` (outer steps and panel evaluations, from the run's metrics), ``cpu`` (model name), ``date``
  (UTC, ISO 8601, when exported).
* the run panel's memory, when the run has one (:data:`PANEL_FILES`): ``best_theta.npz`` and ``best.json`` (the
  best θ so far and its panel record, so a later session keeps a new best only when it beats this one beyond the
  noise) and ``panel/handset_scores.json`` (the hand-set θ's per-task panel scores, so no session evaluates them
  again); a session record lists the compact panel records of its steps (``panel``: step, score, fractions,
  ``vs_handset``/``vs_best`` intervals), the points of the compute curve.
* ``index.json``: ``format``, ``version``, ``step`` and the sha256 and size of each file above. A file that is
  missing, of another size or digest, or unreadable is a :class:`~lopt_trainer.errors.PretrainStateError`
  naming it.

Continuing (:func:`read_state`, then :func:`~lopt_trainer.meta.state.restore_portable` through
``meta_train(..., continue_from=DIR)`` / ``taskgen lopt meta-train --from-state DIR``) restores θ, the outer
state, the sampler state and the step exactly, and gives every estimator a fresh state with all its slots ended,
so each slot starts a new problem of its group (a :class:`FreshEstimatorsWarning` says so). From there the run
goes on like a resumed one, deterministically in its seed and the state.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import os
import shutil
import sys
import warnings
from pathlib import Path

import flax.serialization as fser

from lopt_trainer.common import checkpoint as ckpt
from lopt_trainer.common.machine import cpu_model
from lopt_trainer.common.run_files import json_text, read_json, write_json
from lopt_trainer.errors import PretrainStateError
from lopt_trainer.meta.metrics import read_metrics
from taskgen.specfile import atomic_write_bytes

FORMAT = "lopt-pretrain-state"
VERSION = 1
STATE_FILE = "state.msgpack"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
INDEX_FILE = "index.json"
DATA_FILES = (STATE_FILE, CONFIG_FILE, HISTORY_FILE)
"""The files :data:`INDEX_FILE` always records (with their sha256 and size)."""
PANEL_FILES = ("best_theta.npz", "best.json", "panel/handset_scores.json")
"""Run-folder files of the quality panel carried along when present (recorded in the index like the others)."""
_PANEL_KEYS = ("step", "score", "beats_global_adamlr", "beats_adamlr14", "vs_handset", "vs_best", "seconds")
RUN_HISTORY_FILE = "pretrain_history.json"
"""In a run folder: ``{"sessions": [...], "session_start": step}``, the sessions of the state the run was seeded
from (plus those exported since) and the step at which the current session started."""
_STATE_KEYS = ("step", "theta", "outer_state", "sampler")


class FreshEstimatorsWarning(UserWarning):
    """A run continued from a portable state: its estimators start fresh problems (their states are not kept)."""


@dataclasses.dataclass
class PortableState:
    """A portable state as read from its directory ``path``: ``step``, the checkpoint-like ``payload`` (``theta``,
    ``outer_state``, ``sampler``, ``tasks_digest``, ``tasks_count``; no ``estimators``), the run settings as JSON
    text (``config_json``), the session ``history`` and the panel files carried (``panel_files``: name → bytes,
    :data:`PANEL_FILES`)."""

    path: Path
    step: int
    payload: dict
    config_json: str
    history: list
    panel_files: dict = dataclasses.field(default_factory=dict)

    def as_checkpoint(self) -> dict:
        """The payload in the shape of a run checkpoint (:func:`lopt_trainer.common.checkpoint.read_checkpoint`)
        with no estimator states (``estimators`` is ``{}``) and the config text under ``config``."""
        return {**self.payload, "step": self.step, "estimators": {}, "config": self.config_json}


# ------------------------------------------------------------------------------------------------- export


def export_state(run_dir, dest) -> Path:
    """Write the portable state of the run in ``run_dir`` (its latest checkpoint, with the usual fallback to the
    previous one) into the directory ``dest``; returns ``dest``.

    Atomic as a whole: the files are written into ``DEST.partial`` next to ``dest``, read back and checked
    (:func:`read_state`), and only then does the new directory take the place of the old one (kept as
    ``DEST.previous`` for the moment of the swap). The history is the run's (:data:`RUN_HISTORY_FILE`: that of
    the state it was seeded from) plus one session for the outer steps since the run's current session started
    (none when no step was taken); the run's history file is then advanced, so a later export of the same run
    adds only the steps taken after this one. ``PretrainStateError`` when ``run_dir`` has no checkpoint.
    """
    run_dir, dest = Path(run_dir), Path(dest)
    check_replaceable(dest)
    raw = ckpt.load_checkpoint(run_dir)
    if raw is None:
        raise PretrainStateError(f"run {run_dir}: no checkpoint ({ckpt.FILENAME}) to export")
    step = int(raw["step"])
    run_history = read_run_history(run_dir)
    history = list(run_history["sessions"])
    session = session_record(run_dir, run_history["session_start"], step)
    if session["steps"] > 0:
        history.append(session)
    files = {
        STATE_FILE: state_bytes(raw),
        CONFIG_FILE: raw["config"].encode() if isinstance(raw["config"], str) else bytes(raw["config"]),
        HISTORY_FILE: json_text(history).encode(),
    }
    files.update({name: (run_dir / name).read_bytes() for name in PANEL_FILES if (run_dir / name).is_file()})
    _write_directory(dest, files, step)
    write_json(run_dir / RUN_HISTORY_FILE, {"sessions": history, "session_start": step})
    return dest


def check_replaceable(dest) -> None:
    """Refuse to export into ``dest`` when that would delete anything but an earlier portable state.

    ``dest`` may be missing, an empty folder, or a folder whose every file is listed in its own
    :data:`INDEX_FILE` (a portable state, which the export replaces as a whole). Anything else — a run folder, a
    folder of other files, a file — raises ``PretrainStateError`` naming ``dest`` and what it holds, before
    anything is written.
    """
    dest = Path(dest)
    if not dest.exists() and not dest.is_symlink():
        return
    if not dest.is_dir():
        raise PretrainStateError(f"{dest}: exists and is not a folder; export a state into a new or empty folder "
                                 "(nothing written)")
    present = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if not p.is_dir())
    if not present:
        return
    index = read_json(dest / INDEX_FILE)
    own = set(index.get("files", {})) | {INDEX_FILE} if isinstance(index, dict) and index.get("format") == FORMAT \
        else set()
    foreign = [p for p in present if p not in own]
    if foreign:
        shown = ", ".join(foreign[:4]) + (f" and {len(foreign) - 4} more" if len(foreign) > 4 else "")
        what = "files that are not part of its portable state" if own else "files that are not a portable state"
        raise PretrainStateError(f"{dest}: holds {what} ({shown}); the export replaces the folder as a whole, so "
                                 "give a new or empty folder, or one that holds only a portable state (nothing "
                                 "written)")


def state_bytes(raw: dict) -> bytes:
    """The ``state.msgpack`` bytes of a raw checkpoint payload: its step, θ, outer state, sampler state and task
    digest, without the estimator states."""
    payload = {"format": FORMAT, "version": VERSION, "step": int(raw["step"]), "theta": raw["theta"],
               "outer_state": raw["outer_state"], "sampler": raw["sampler"],
               "tasks_digest": raw.get("tasks_digest") or "", "tasks_count": int(raw.get("tasks_count") or 0)}
    return fser.msgpack_serialize(payload)


def index_record(files: dict[str, bytes], step: int) -> dict:
    """The content of :data:`INDEX_FILE` for ``files`` (name → bytes) at outer step ``step``."""
    return {"format": FORMAT, "version": VERSION, "step": int(step),
            "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                      for name, data in sorted(files.items())}}


def _write_directory(dest: Path, files: dict[str, bytes], step: int) -> None:
    """Write ``files`` and their index as the directory ``dest``, replacing it as a whole (see
    :func:`export_state`)."""
    partial, previous = dest.with_name(dest.name + ".partial"), dest.with_name(dest.name + ".previous")
    recover(dest)  # an earlier export that died between its renames left only DEST.previous
    for leftover in (partial, previous):
        if leftover.exists():
            shutil.rmtree(leftover)
    partial.mkdir(parents=True)
    for name, data in files.items():
        (partial / name).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(partial / name, data)
    atomic_write_bytes(partial / INDEX_FILE, json_text(index_record(files, step)).encode())
    read_state(partial)  # what was written reads back
    if dest.exists():
        os.replace(dest, previous)
    os.replace(partial, dest)
    if previous.exists():
        shutil.rmtree(previous)


def session_record(run_dir: Path, start: int, end: int) -> dict:
    """One session of the history: outer steps ``start`` → ``end`` of the run in ``run_dir``, its wall seconds
    (the ``step_seconds`` of those steps and the ``seconds`` of panel evaluations after them, from the run's
    metrics), this machine's CPU model and core count, the date (UTC), and the compact records of the panel
    evaluations in those steps (``session_seconds``: the session's wall seconds up to and including each)."""
    seconds, panel = 0.0, []
    for r in read_metrics(run_dir):
        step = r.get("step", -1)
        if r.get("kind") == "step" and start <= step < end:
            seconds += float(r.get("step_seconds") or 0.0)
        elif r.get("kind") == "panel" and (start < step <= end or step == start == 0):
            seconds += float(r.get("seconds") or 0.0)
            panel.append({k: r[k] for k in _PANEL_KEYS if k in r} | {"session_seconds": round(seconds, 1)})
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return {"steps_from": int(start), "steps_to": int(end), "steps": int(end - start),
            "wall_seconds": round(seconds, 1), "cpu": cpu_model(), "cpus": os.cpu_count() or 1,
            "date": now.isoformat(), "panel": panel}


def finish_interrupted_export(run_dir, raw: dict, state: "PortableState") -> bool:
    """Finish an export of this run that was stopped between swapping ``state`` in and advancing the run's history
    (:func:`export_state`'s last step); returns whether there was one to finish.

    It was one when the state is exactly what this run's checkpoint ``raw`` exports to (the same state bytes, at
    the same step) and its history is the run's sessions plus the one session since the run's current session
    started, as this run's own metrics record it (its wall seconds and panel records tell it from an identical
    run elsewhere). The run's history file is then advanced as the export would have done, and the run is again a
    continuation of the state.
    """
    run_history = read_run_history(run_dir)
    sessions = list(run_history["sessions"])
    extra = state.history[len(sessions):]
    if (state.history[:len(sessions)] != sessions or len(extra) != 1 or int(raw["step"]) != state.step
            or extra[0].get("steps_from") != run_history["session_start"] or extra[0].get("steps_to") != state.step):
        return False
    if state_bytes(raw) != (Path(state.path) / STATE_FILE).read_bytes():
        return False
    mine = session_record(run_dir, run_history["session_start"], state.step)
    if any(mine[k] != extra[0].get(k) for k in ("steps_from", "steps_to", "steps", "wall_seconds", "panel")):
        return False  # the same numbers from another run (a run is deterministic), not this run's own export
    write_json(Path(run_dir) / RUN_HISTORY_FILE, {"sessions": list(state.history), "session_start": state.step})
    return True


def read_run_history(run_dir) -> dict:
    """The run folder's :data:`RUN_HISTORY_FILE` (``{"sessions": [], "session_start": 0}`` for a run that
    started from its initial θ)."""
    found = read_json(Path(run_dir) / RUN_HISTORY_FILE)
    if not isinstance(found, dict):
        return {"sessions": [], "session_start": 0}
    return {"sessions": list(found.get("sessions") or []), "session_start": int(found.get("session_start") or 0)}


def start_session(run_dir, state: PortableState) -> None:
    """Record in the run folder that a session starts at ``state.step`` with the state's history, and put the
    state's panel files (:data:`PANEL_FILES`) into the run folder."""
    for name in PANEL_FILES:
        if name in state.panel_files:
            (Path(run_dir) / name).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(Path(run_dir) / name, state.panel_files[name])
    write_json(Path(run_dir) / RUN_HISTORY_FILE, {"sessions": state.history, "session_start": state.step})


# --------------------------------------------------------------------------------------------------- read


def read_state(path) -> PortableState:
    """The portable state in the directory ``path``, every file checked against ``index.json``.

    ``PretrainStateError`` naming the file for a missing directory or file, a size or sha256 that differs from
    the index, a file that does not parse, another format or version, or a missing entry.
    """
    path = Path(path)
    recover(path)
    if not path.is_dir():
        raise PretrainStateError(f"pretraining state {path}: not a directory")
    index = _read_index(path)
    data = {name: _read_checked(path, name, index["files"].get(name)) for name in DATA_FILES}
    panel_files = {name: _read_checked(path, name, index["files"][name]) for name in PANEL_FILES
                   if name in index["files"]}
    payload = _decode_state(path / STATE_FILE, data[STATE_FILE])
    if int(payload["step"]) != int(index["step"]):
        raise PretrainStateError(f"pretraining state {path / STATE_FILE}: damaged (step {payload['step']}, "
                                 f"{INDEX_FILE} says {index['step']})")
    config_text = data[CONFIG_FILE].decode("utf-8", errors="replace")
    history = _decode_json(path / HISTORY_FILE, data[HISTORY_FILE])
    _decode_json(path / CONFIG_FILE, data[CONFIG_FILE])
    if not isinstance(history, list):
        raise PretrainStateError(f"pretraining state {path / HISTORY_FILE}: damaged (not a JSON list)")
    return PortableState(path, int(payload["step"]), payload, config_text, history, panel_files)


def recover(path) -> None:
    """Put ``PATH.previous`` back as ``PATH`` when an export died between its two renames (``PATH`` missing):
    the state that was there before that export is not lost."""
    path = Path(path)
    previous = path.with_name(path.name + ".previous")
    if not path.exists() and previous.is_dir():
        os.replace(previous, path)


def state_step(path) -> int:
    """The outer step of the portable state at ``path`` per its index, or 0 when there is none (no directory, or
    an empty one): what ``make pretrain`` adds its steps to. A damaged index, or a folder that holds files but no
    ``index.json`` (a damaged state: continuing from the hand-set θ would replace it), raises
    ``PretrainStateError``."""
    path = Path(path)
    recover(path)
    if not (path / INDEX_FILE).is_file():
        held = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
        if held:
            raise PretrainStateError(f"pretraining state {path}: holds {', '.join(held[:4])} but no {INDEX_FILE}: "
                                     "damaged; restore it (e.g. `git checkout -- " f"{path}`) or move it away")
        return 0
    return int(_read_index(path)["step"])


def _read_index(path: Path) -> dict:
    name = path / INDEX_FILE
    if not name.is_file():
        raise PretrainStateError(f"pretraining state {name}: missing (export a run with `taskgen lopt "
                                 f"export-state RUN --out {path}`)")
    index = _decode_json(name, name.read_bytes())
    if not isinstance(index, dict) or index.get("format") != FORMAT or not isinstance(index.get("files"), dict):
        raise PretrainStateError(f"pretraining state {name}: damaged (not a {FORMAT} index)")
    if index.get("version") != VERSION:
        raise PretrainStateError(f"pretraining state {name}: format version {index.get('version')!r}, this "
                                 f"toolkit reads version {VERSION}")
    if not isinstance(index.get("step"), int) or isinstance(index.get("step"), bool) or index["step"] < 0:
        raise PretrainStateError(f"pretraining state {name}: damaged (step {index.get('step')!r})")
    return index


def _read_checked(path: Path, name: str, expected) -> bytes:
    file = path / name
    if not isinstance(expected, dict):
        raise PretrainStateError(f"pretraining state {path / INDEX_FILE}: damaged (no entry for {name})")
    if not file.is_file():
        raise PretrainStateError(f"pretraining state {file}: missing")
    data = file.read_bytes()
    if len(data) != expected.get("bytes") or hashlib.sha256(data).hexdigest() != expected.get("sha256"):
        raise PretrainStateError(f"pretraining state {file}: damaged ({len(data)} bytes whose sha256 differs "
                                 f"from the {expected.get('bytes')} bytes {INDEX_FILE} records)")
    return data


def _decode_json(file: Path, data: bytes):
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PretrainStateError(f"pretraining state {file}: damaged ({type(e).__name__}: {e})") from None


def _decode_state(file: Path, data: bytes) -> dict:
    return ckpt.decode_payload(data, f"pretraining state {file}", FORMAT, VERSION, _STATE_KEYS, PretrainStateError)


def warn_fresh_estimators(state: PortableState, groups: int, slots: int) -> None:
    """Warn (:class:`FreshEstimatorsWarning`, printed once) that the run continues from ``state`` with fresh
    estimator states: the ``groups × slots`` slots start new problems."""
    warnings.warn(f"pretraining state {state.path}: continuing at outer step {state.step} with fresh estimator "
                  f"states (a portable state does not keep them): the {groups * slots} slots of the {groups} "
                  "estimators start new problems of their groups", FreshEstimatorsWarning, stacklevel=2)


def pretrain_limits(argv=None) -> None:
    """``make pretrain``'s check of ``PRETRAIN_STEPS`` and ``PRETRAIN_HOURS`` (``argv`` = ``[steps, hours]``, default
    ``sys.argv[1:]``): prints ``--hours H`` (nothing for 0 = no limit); a value that is not a whole number of
    steps ≥ 1, or not a finite number of hours ≥ 0, exits with one ``Error:`` line naming it and status 2."""
    steps, hours = (sys.argv[1:] if argv is None else argv)[:2]
    try:
        ok_steps = int(steps) >= 1
    except ValueError:
        ok_steps = False
    if not ok_steps:
        print(f"Error: PRETRAIN_STEPS={steps!r}: give a whole number of outer steps >= 1", file=sys.stderr)
        sys.exit(2)
    try:
        h = float(hours)
    except ValueError:
        h = math.nan
    if not (math.isfinite(h) and h >= 0):
        print(f"Error: PRETRAIN_HOURS={hours!r}: give a number of hours >= 0 (0 = no limit), e.g. 1.5",
              file=sys.stderr)
        sys.exit(2)
    print(f"--hours {h}" if h > 0 else "")


def main(argv) -> int:
    """For ``argv == ["step", DIR]``: print the outer step of the pretraining state in DIR (0 when there is none);
    a damaged state gives one ``Error:`` line and exit status 2, other arguments a usage line and status 2.
    ``make pretrain`` calls it through ``python -c`` (``python -m`` on this module warns, since the package
    imports it first)."""
    if len(argv) != 2 or argv[0] != "step":
        print("usage: main(['step', DIR]) (see the Makefile's pretrain target)", file=sys.stderr)
        return 2
    try:
        print(state_step(argv[1]))
    except PretrainStateError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"Error: pretraining state {argv[1]}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
