"""Atomic file writes: a killed process never leaves a half-written checkpoint, manifest or result.

`atomic_write` writes a temporary file `.NAME.<host>.<pid>.<random>.tmp` next to the destination, then
renames it over the destination. A new file gets the mode the umask gives (as `open` would), a rewritten
file keeps its mode, and a destination that is a symbolic link has the file it points to rewritten (the
link stays). Temporaries left by killed processes are recognised by the host and pid in their name:
`atomic_write` removes those in its destination's folder, `remove_stale_temporaries` those of a folder
tree. `check_output_path` tells, before any work, whether an output file can be written at all.
"""
from __future__ import annotations

import json
import math
import os
import re
import secrets
import socket
import time
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import UserError

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_TEMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")
RESCAN_SECONDS = 60.0  # `atomic_write` looks for stale temporaries in a folder at most this often
_last_scan: dict[str, float] = {}  # folder -> when this process last looked for stale temporaries in it


def _temporary_name(name: str) -> str:
    """`.NAME.<host>.<pid>.<8 hex digits>.tmp`: hidden, next to its destination, naming its writer."""
    return f".{name}.{_HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def _pid_alive(pid: int) -> bool:
    """True when a process with this id runs (or may run: it belongs to another user)."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's process
        return True
    return True


def _stale(entry: os.DirEntry) -> bool:
    """True for a temporary of `atomic_write` written on this machine by a process that no longer runs.

    Temporaries of other machines (a shared file system) are never judged: their pids mean nothing here.
    """
    match = _TEMP_PATTERN.match(entry.name) if entry.name.startswith(".") else None
    if match is None or match["host"] != _HOST:
        return False
    return entry.is_file(follow_symlinks=False) and not _pid_alive(int(match["pid"]))


def _remove_stale(folder: Path) -> list[Path]:
    """Delete the stale temporaries directly in `folder`."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if _stale(entry):
            try:
                os.unlink(entry.path)
            except FileNotFoundError:  # another process removed it first
                continue
            removed.append(Path(entry.path))
    return removed


def remove_stale_temporaries(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Delete the temporaries (`.NAME.<host>.<pid>.<random>.tmp`) that killed `atomic_write` calls left.

    Only files written on this machine by a process that no longer runs are removed; writes in
    progress, and temporaries of other machines sharing the folder, are left alone.

    Args:
        folder: the folder to clean (a missing folder is nothing to clean).
        recursive: also clean every folder below it (symbolic links to folders are not followed).
    Returns:
        the removed files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    if not recursive:
        return _remove_stale(folder)
    removed = []
    for current, _dirs, _files in os.walk(folder):
        removed += _remove_stale(Path(current))
    return removed


def _clean_before_write(target: Path) -> None:
    """Remove the stale temporaries next to `target` (its own among them); a folder is listed at most
    every RESCAN_SECONDS, so that writing many files into one big cache folder stays cheap."""
    key, now = str(target.parent), time.monotonic()
    if now - _last_scan.get(key, -RESCAN_SECONDS) >= RESCAN_SECONDS:
        _last_scan[key] = now
        _remove_stale(target.parent)


def _destination(path: Path) -> Path:
    """The file that writing `path` changes: the end of its symbolic links, if it is one."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _named(err: OSError, tmp: Path, path: Path) -> OSError:
    """`err` naming the destination instead of the temporary file."""
    if str(tmp) not in (err.filename, err.filename2):
        return err
    return OSError(err.errno, err.strerror or str(err), str(path))


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write through a temporary file in the same folder, then rename it over `path`.

    A new file gets the mode the umask gives, an existing one keeps its mode; when `path` is a
    symbolic link, the file it points to is written and the link is kept. Stale temporaries in
    the destination's folder (left by killed writers) are removed first.

    Args:
        path: destination file.
        write: function writing the content to the temporary path it is given.
    Returns:
        `path`.
    """
    path = Path(path)
    target = _destination(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _clean_before_write(target)
    mode = os.stat(target).st_mode & 0o7777 if target.is_file() else None
    tmp = target.parent / _temporary_name(target.name)
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies
        write(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as err:
        named = _named(err, tmp, path)
        if named is err:
            raise
        raise named from err
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return path


def _writable_folder(folder: Path) -> str | None:
    """None when a file can be created in `folder`, else the reason (tried with a temporary file)."""
    probe = folder / _temporary_name("write-check")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as err:
        return err.strerror or str(err)
    os.unlink(probe)
    return None


def check_output_path(path: str | Path, what: str) -> Path:
    """Check, before any work, that an output file can be written; raise a one-line UserError if not.

    Refused: an existing folder, an existing file that is read-only, a parent that is a file or a folder
    where no file can be created (read-only, no permission). A missing parent is fine when it can be
    created (`atomic_write` creates it); nothing is left behind by the check.

    Args:
        path: the output file.
        what: how the user named it, e.g. "--out", for the message.
    Returns:
        `path` as a Path.
    """
    path = Path(path)
    target = _destination(path)
    if target.is_dir():
        raise UserError(f"{what} {path} is a folder: give a file name, e.g. {path / 'NAME'}")
    if target.exists() and not os.access(target, os.W_OK):
        raise UserError(f"{what} {path} is read-only: make it writable (chmod u+w) or choose another file")
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(f"{what} {path} cannot be created: {folder} is a file, not a folder; choose another path")
    reason = _writable_folder(folder)
    if reason is not None:
        raise UserError(f"{what} {path} cannot be created in {folder} ({reason}): choose a writable folder")
    return path


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """`torch.save` atomically.

    Args:
        obj: anything `torch.save` accepts (keep it to tensors and plain types for `weights_only` loading).
        path: destination file.
    """
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_json(data: Any, path: str | Path) -> Path:
    """Write JSON (indented, keys in insertion order) atomically.

    Args:
        data: JSON-serialisable object.
        path: destination file.
    """
    text = json.dumps(data, indent=2, default=_json_default) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def json_cell(value: Any) -> Any:
    """A table cell in JSON-safe form: NaN, NA and None become None, numpy scalars Python numbers.

    Args:
        value: one cell of a pandas table.
    """
    import pandas as pd  # only table writers need pandas; keep it out of every io_utils import

    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")
