"""The run folder: what every stage writes where, and the one contract of the commands that write it.

Layout of a run folder (paths relative to it):

    run.json                         the run's record: profile, parameters, git revision, packages,
                                     and per finished stage the parameters it ran with
    01_results.json .. 05_results.json  each notebook's (stage's) results; later stages read them
    data/  manifests/                the synthetic world, converted and curated manifests (01, 02)
    backbone/clip_pretrained.pt      the pretrained stand-in CLIP of the synthetic profile (03)
    train/seed<S>/fold<F>/           checkpoints (best.pt, last.pt) and history of each training (03)
    loco/<class>/                    leave-one-class-out trainings (04)
    cache/                           frame and caption embeddings (`features.frame_cache`)
    cache/features/                  interview window embeddings (`features.window_cache`)
    NN_name.ipynb                    executed notebooks (`emoclip reproduce`)

Contract (`emoclip reproduce` and `emoclip train`): a new folder starts a run; a folder holding a run
resumes it when the parameters are the same, re-runs from the first stage whose parameters changed when
that stage comes after training (evaluation settings), and is refused when data, curation or training
parameters changed (use another folder or `--force`). A folder without run.json is never touched;
`--force` removes only what the tool writes (`TOOL_OUTPUTS`), never a file of the user's. A run folder is
locked while a command works in it (`RunLock`): a second command there is refused.
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import fnmatch
import importlib.metadata as md
import json
import os
import platform
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..io_utils import atomic_write_json, remove_stale_temporaries

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_RECORD = "run.json"
STAGES: tuple[str, ...] = ("01", "02", "03", "04", "05")
RETRAINING_STAGES: frozenset[str] = frozenset({"01", "02", "03"})  # a change here changes data or trained weights
FRAME_CACHE = "cache"  # frame and caption embeddings shared by training and evaluation
WINDOW_CACHE = "cache/features"  # interview window embeddings
PRETRAINED_BACKBONE = "backbone/clip_pretrained.pt"
CURATED_MANIFEST = "manifests/train_curated.csv"
LOCK_FILE = ".emoclip.lock"
# what the commands write at the top of a run folder: all that `--force` may remove
TOOL_OUTPUTS: tuple[str, ...] = (RUN_RECORD, LOCK_FILE, "[0-9][0-9]_*", "data", "manifests", "backbone", "train",
                                 "loco", "cache")
RECORDED_PACKAGES = ("emoclip-lib", "torch", "numpy", "openai-clip", "decord", "opencv-python-headless",
                     "scikit-learn", "pandas", "papermill", "nbval")


def stage_path(run_dir: str | Path, stage: str) -> Path:
    """Where notebook `stage` ("01".."05") writes its results JSON.

    Args:
        run_dir: the run directory.
        stage: two-digit notebook number.
    """
    return Path(run_dir) / f"{stage}_results.json"


def read_stage(run_dir: str | Path, stage: str) -> dict[str, Any]:
    """Results of an earlier notebook; a clear error when it has not run yet.

    Args:
        run_dir: the run directory.
        stage: two-digit notebook number.
    """
    path = stage_path(run_dir, stage)
    if not path.is_file():
        raise UserError(f"{path.name} not found in the run directory {run_dir}: run notebook {stage} first "
                        "(or the whole chain with `emoclip reproduce`)")
    return json.loads(path.read_text(encoding="utf-8"))


def write_stage(run_dir: str | Path, stage: str, results: dict[str, Any]) -> Path:
    """Write a notebook's results JSON atomically.

    Args:
        run_dir: the run directory.
        stage: two-digit notebook number.
        results: JSON-serialisable results.
    """
    return atomic_write_json(results, stage_path(run_dir, stage))


def run_relative(path: str | Path, run_dir: str | Path) -> str:
    """How a run records a path: relative to the run folder when inside it, else absolute (POSIX form).

    Args:
        path: the path to record.
        run_dir: the run directory.
    """
    path, run = Path(path).expanduser().resolve(), Path(run_dir).expanduser().resolve()
    try:
        return path.relative_to(run).as_posix()
    except ValueError:
        return path.as_posix()


def read_record(out: Path) -> dict[str, Any]:
    """run.json of a run directory ({} when absent).

    Args:
        out: run directory.
    """
    path = out / RUN_RECORD
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is not a readable run record ({err}); move the folder away or use another "
                        f"--out") from None
    if not isinstance(record, dict):
        raise UserError(f"{path} is not a run record (a JSON object); move the folder away or use another --out")
    return record


def _git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True)
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_metadata(profile: str, params: dict[str, Any], command: str) -> dict[str, Any]:
    """What a new run records about itself: parameters, git revision, package versions, seed.

    Args:
        profile: the profile's name.
        params: the resolved flat parameters.
        command: the command that made the run.
    """
    versions = {}
    for pkg in RECORDED_PACKAGES:
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {"profile": profile, "command": command, "parameters": params, "seed": params.get("seed"),
            "git_revision": _git_revision(), "python": platform.python_version(), "packages": versions,
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "stages": {}}


def check_run_folder(out: Path) -> None:
    """Refuse a path that is a file, or a non-empty folder that is not a run folder (nothing in it is touched).

    Args:
        out: the run directory.
    """
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder: choose a folder for the run")
    if out.is_dir() and not (out / RUN_RECORD).is_file() and any(e.name != LOCK_FILE for e in out.iterdir()):
        raise UserError(f"{out} exists, is not empty and is not a run folder (no {RUN_RECORD}): nothing in it "
                        f"is touched; choose another --out")


def _restart_stage(record: dict[str, Any], stage_params: dict[str, dict[str, Any]]) -> str | None:
    """The first finished stage whose recorded parameters differ from `stage_params` (None: none differs)."""
    done = record.get("stages", {})
    for stage in STAGES:
        if stage in done and done[stage] != stage_params.get(stage, done[stage]):
            return stage
    return None


def open_run(out: Path, profile: str, params: dict[str, Any], stage_params: dict[str, dict[str, Any]],
             command: str, force: bool = False) -> dict[str, Any]:
    """Start, resume or refuse a run in `out`; returns its record (written to run.json).

    Args:
        out: the run directory.
        profile: the profile's name.
        params: every resolved flat parameter.
        stage_params: per stage, the parameters it reads (what decides whether it must run again).
        command: the command that opens the run (recorded).
        force: delete an existing run (a folder with run.json) and start again.
    Raises:
        UserError: `out` is a folder that is not a run, or a run whose data or training parameters differ.
    """
    check_run_folder(out)
    record = read_record(out) if out.is_dir() else {}
    if record and force:
        _remove_tool_outputs(out)
        record = {}
    if not record:
        out.mkdir(parents=True, exist_ok=True)
        record = run_metadata(profile, params, command)
    restart = _restart_stage(record, stage_params)
    if restart in RETRAINING_STAGES:
        changed = sorted(k for k, v in stage_params[restart].items() if record["stages"][restart].get(k) != v)
        raise UserError(f"{out} holds a run made with other values of {', '.join(changed)} (notebook {restart}: "
                        f"data, captions or training); use another --out, or --force to delete that run")
    if restart is not None:
        for stage in STAGES[STAGES.index(restart):]:
            record["stages"].pop(stage, None)
    remove_stale_temporaries(out)  # left by a killed write of an earlier run
    record["parameters"] = params
    atomic_write_json(record, out / RUN_RECORD)
    return record


def _remove_tool_outputs(out: Path) -> None:
    """Delete what the commands wrote in a run folder; say what else stays there."""
    for entry in out.iterdir():
        if entry.name != LOCK_FILE and any(fnmatch.fnmatch(entry.name, pattern) for pattern in TOOL_OUTPUTS):
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    kept = sorted(e.name for e in out.iterdir() if e.name != LOCK_FILE)
    if kept:
        print(f"--force kept what the tool did not write in {out}: {', '.join(kept[:10])}")


class RunLock:
    """An advisory lock on a run folder, held while a command works in it (released when the process ends)."""

    def __init__(self, out: Path) -> None:
        """Args:
            out: the run directory (created)."""
        self.path = out / LOCK_FILE
        self.handle: Any = None

    def __enter__(self) -> "RunLock":
        check_run_folder(self.path.parent)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "another process"
            self.handle.close()
            raise UserError(f"{self.path.parent} is in use by {holder}: wait for it to finish, or use another "
                            f"--out") from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        self.handle.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def stage_done(out: Path, record: dict[str, Any], stage: str, params: dict[str, Any]) -> bool:
    """Whether `stage` finished with these parameters (and its results are there).

    Args:
        out: run directory.
        record: the run's record.
        stage: two-digit stage number.
        params: the parameters the stage reads.
    """
    return record.get("stages", {}).get(stage) == params and stage_path(out, stage).is_file()


def mark_done(out: Path, record: dict[str, Any], stage: str, params: dict[str, Any]) -> None:
    """Record a finished stage in run.json (the later stages must then run again).

    Args:
        out: run directory.
        record: the run's record (updated in place).
        stage: two-digit stage number.
        params: the parameters the stage ran with.
    """
    stages = record.setdefault("stages", {})
    for later in STAGES[STAGES.index(stage) + 1:]:
        stages.pop(later, None)
    stages[stage] = params
    atomic_write_json(record, out / RUN_RECORD)
