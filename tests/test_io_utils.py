"""Atomic writes (`emoclip_lib.io_utils`): file modes, symbolic links, stale temporaries, output checks."""
from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from emoclip_lib import io_utils
from emoclip_lib.errors import UserError
from emoclip_lib.io_utils import atomic_write, atomic_write_json, check_output_path, remove_stale_temporaries

TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


@pytest.fixture()
def umask():
    """`os.umask` for one test: the process umask is restored afterwards."""
    saved = os.umask(0o022)
    yield os.umask
    os.umask(saved)


@pytest.fixture(autouse=True)
def fresh_scans(monkeypatch):
    """Every test sees folders as never scanned for stale temporaries."""
    monkeypatch.setattr(io_utils, "_last_scan", {})


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def dead_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def temporary(folder: Path, name: str, pid: int, host: str = io_utils._HOST) -> Path:
    path = folder / f".{name}.{host}.{pid}.0123abcd.tmp"
    path.write_text("half written", encoding="utf-8")
    return path


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_a_new_file_gets_the_mode_the_umask_gives(tmp_path, umask, mask, expected):
    umask(mask)
    out = atomic_write_json({"a": 1}, tmp_path / "new.json")
    assert mode(out) == expected


def test_rewriting_keeps_the_mode_of_the_existing_file(tmp_path, umask):
    out = tmp_path / "shared.csv"
    out.write_text("old\n", encoding="utf-8")
    os.chmod(out, 0o664)
    umask(0o077)
    atomic_write(out, lambda tmp: tmp.write_text("new\n", encoding="utf-8"))
    assert out.read_text(encoding="utf-8") == "new\n" and mode(out) == 0o664
    os.chmod(out, 0o640)
    umask(0o000)
    atomic_write(out, lambda tmp: tmp.write_text("newer\n", encoding="utf-8"))
    assert mode(out) == 0o640


def test_writing_to_a_symbolic_link_writes_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / "results.json"
    target.write_text("{}", encoding="utf-8")
    link = tmp_path / "latest.json"
    link.symlink_to(target)
    atomic_write_json({"x": 2}, link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text(encoding="utf-8").strip().startswith("{") and '"x": 2' in target.read_text()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["results.json"]
    dangling = tmp_path / "next.json"
    dangling.symlink_to(tmp_path / "data" / "later.json")
    atomic_write_json([1], dangling)
    assert dangling.is_symlink() and (tmp_path / "data" / "later.json").is_file()


def test_the_temporary_name_carries_host_and_pid(tmp_path):
    seen = []
    atomic_write(tmp_path / "out.txt", lambda tmp: seen.append(tmp.name) or tmp.write_text("x"))
    match = TEMP.match(seen[0])
    assert match and match["name"] == "out.txt" and int(match["pid"]) == os.getpid()
    assert match["host"] == io_utils._HOST
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_failed_write_names_the_destination_and_leaves_nothing(tmp_path):
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(IsADirectoryError) as info:
        atomic_write_json({}, tmp_path / "folder.json")
    assert info.value.filename == str(tmp_path / "folder.json")
    assert [p.name for p in tmp_path.iterdir()] == ["folder.json"]


KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from emoclip_lib.io_utils import atomic_write

    def write(tmp):
        tmp.write_text("half of a checkpoint")
        Path(sys.argv[2]).write_text(tmp.name)
        time.sleep(60)

    atomic_write(sys.argv[1], write)
""")


def test_a_killed_write_leaves_a_temporary_that_the_next_write_removes(tmp_path):
    (tmp_path / "run").mkdir()
    out, started = tmp_path / "run" / "best.pt", tmp_path / "started"
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(out), str(started)])
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), "the writer did not start"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    left = out.parent / started.read_text()
    assert left.is_file() and not out.exists()
    alive = temporary(out.parent, "best.pt", os.getpid())  # a write of this process, in progress
    atomic_write(out, lambda tmp: tmp.write_text("full checkpoint"))
    assert out.read_text() == "full checkpoint" and not left.exists() and alive.exists()


def test_remove_stale_temporaries_of_a_folder_tree(tmp_path):
    (tmp_path / "train" / "seed0").mkdir(parents=True)
    gone = dead_pid()
    stale = [temporary(tmp_path, "run.json", gone), temporary(tmp_path / "train" / "seed0", "best.pt", gone)]
    kept = [temporary(tmp_path, "run.json", os.getpid()),
            temporary(tmp_path, "run.json", gone, host="another-machine"),
            tmp_path / ".notes.tmp", tmp_path / "results.json"]
    for path in kept[2:]:
        path.write_text("mine")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)
    deeper = temporary(tmp_path / "train", "x.json", gone)
    assert remove_stale_temporaries(tmp_path, recursive=False) == [] and deeper.exists()
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_check_output_path_accepts_new_and_existing_files_and_leaves_nothing(tmp_path):
    assert check_output_path(tmp_path / "a.csv", "--out") == tmp_path / "a.csv"
    (tmp_path / "b.csv").write_text("old")
    check_output_path(tmp_path / "b.csv", "--out")
    check_output_path(tmp_path / "new" / "deeper" / "c.csv", "--out")  # folders atomic_write will create
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.csv"]


def test_check_output_path_refuses_folders_and_files_in_the_way(tmp_path):
    with pytest.raises(UserError, match=r"^--out .* is a folder: give a file name"):
        check_output_path(tmp_path, "--out")
    (tmp_path / "plain").write_text("x")
    with pytest.raises(UserError, match=r"--plot .*plain/t.png cannot be created: .*plain is a file"):
        check_output_path(tmp_path / "plain" / "t.png", "--plot")
    with pytest.raises(UserError, match="is a file"):
        check_output_path(tmp_path / "plain" / "sub" / "t.png", "--plot")


def test_check_output_path_refuses_a_folder_where_nothing_can_be_created(tmp_path, monkeypatch):
    real_open = os.open

    def read_only(path, flags, *args):
        if "write-check" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(io_utils.os, "open", read_only)
    with pytest.raises(UserError, match=r"--out .*r.json cannot be created in .*Permission denied.*writable folder"):
        check_output_path(tmp_path / "r.json", "--out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to read-only files and folders")
def test_check_output_path_refuses_read_only_files_and_folders(tmp_path):
    (tmp_path / "kept.csv").write_text("x")
    os.chmod(tmp_path / "kept.csv", 0o444)
    with pytest.raises(UserError, match="read-only"):
        check_output_path(tmp_path / "kept.csv", "--out")
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o555)
    try:
        with pytest.raises(UserError, match="cannot be created"):
            check_output_path(locked / "x.csv", "--out")
    finally:
        os.chmod(locked, 0o755)
