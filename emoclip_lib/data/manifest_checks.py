"""Manifest validation: files exist and decode, labels are known, folds are consistent, captions are clean.

A path that is absolute or leads outside the dataset root (through `..` or a symbolic link) is reported
and never opened. Problems name the manifest line of their row when it is known (rows read from a
file), else only the sample's path.
"""
from __future__ import annotations

import os
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol, Sequence

from ..errors import UserError
from ..workers import parallel_map
from .classes import CANONICAL_CLASSES, COMPOUND_SEPARATOR, parse_labels
from .manifest import ManifestRow
from .video import count_frames, quiet_native_stderr, read_frames


class _HasPath(Protocol):
    """A row with a path relative to the dataset root and its line in the manifest."""

    @property
    def path(self) -> str: ...

    @property
    def row_number(self) -> int: ...


_MOJIBAKE_MARKERS: tuple[str, ...] = ("锟斤拷", "烫烫烫", "屯屯屯", "ï»¿")


@dataclass(frozen=True)
class Problem:
    """One problem found by `validate_manifest`."""

    row_number: int  # the manifest line; 0 when unknown (rows built in memory) or for the whole manifest
    path: str  # the sample's path as written in the manifest; "" for the whole manifest
    message: str

    def __str__(self) -> str:
        where = [f"row {self.row_number}"] if self.row_number > 0 else []
        where += [self.path] if self.path else []
        return ": ".join([*where, self.message])


def _row_ref(row_number: int) -> str:
    """How a message points to another row: its line when known."""
    return f"row {row_number}" if row_number > 0 else "another row"


def _also_rows(lines: list[int]) -> str:
    """The suffix naming the other rows of a path, e.g. ' (also rows 4, 9)'; empty for a single row."""
    if len(lines) < 2:
        return ""
    known = [str(n) for n in lines[1:] if n > 0]
    if len(known) == len(lines) - 1:
        return f" (also rows {', '.join(known)})"
    return f" (also {len(lines) - 1} other row(s))"


@dataclass
class ValidationReport:
    """Counts and problems of a manifest.

    `split_counts`: rows per split; `fold_counts`: {fold: {split: rows}} (fold None for single-split
    datasets); `class_counts`: distinct samples per class (a compound sample counts for each of its
    classes); `compound`: distinct compound samples.
    """

    num_rows: int = 0
    num_paths: int = 0
    split_counts: dict[str, int] = field(default_factory=dict)
    fold_counts: dict[int | None, dict[str, int]] = field(default_factory=dict)
    class_counts: dict[str, int] = field(default_factory=dict)
    compound: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def summary(self) -> str:
        """Human-readable counts (one item per line)."""
        lines = [f"rows: {self.num_rows}, distinct paths: {self.num_paths}",
                 "split: " + ", ".join(f"{k} {v}" for k, v in sorted(self.split_counts.items()))]
        for fold, counts in sorted(self.fold_counts.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
            name = "no fold" if fold is None else f"fold {fold}"
            lines.append(f"{name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        lines.append("samples per class: " + ", ".join(f"{k} {v}" for k, v in self.class_counts.items()))
        lines.append(f"compound samples: {self.compound}")
        lines.append(f"problems: {len(self.problems)}")
        return "\n".join(lines)


def caption_problems(text: str) -> list[str]:
    """Encoding problems of a caption: replacement characters, mojibake, control characters.

    Args:
        text: the caption.
    """
    out: list[str] = []
    if "\ufffd" in text:
        out.append("caption contains U+FFFD replacement characters: the source was decoded with the wrong "
                   "encoding (MAFW split files are GBK); regenerate the manifest with `emoclip manifest`")
    controls = [c for c in text if unicodedata.category(c) == "Cc"]
    if controls:
        out.append(f"caption contains control character U+{ord(controls[0]):04X}; remove it")
    if any(m in text for m in _MOJIBAKE_MARKERS) or _looks_misdecoded(text):
        out.append("caption looks like mojibake (text decoded with the wrong encoding); regenerate the "
                   "manifest from the original files with `emoclip manifest`")
    return out


def _looks_misdecoded(text: str) -> bool:
    """True when UTF-8 or GBK bytes were evidently decoded as Latin-1/cp1252."""
    if text.isascii():
        return False
    for wrong in ("cp1252", "latin-1"):
        try:
            raw = text.encode(wrong)
        except UnicodeEncodeError:
            continue
        try:
            raw.decode("utf-8")
            return True  # non-ASCII Latin text that is valid UTF-8 once re-encoded
        except UnicodeDecodeError:
            pass
        high = sum(b >= 0x80 for b in raw)
        if high >= 4:
            try:
                fixed = raw.decode("gbk")
            except UnicodeDecodeError:
                continue
            if sum("\u4e00" <= c <= "\u9fff" for c in fixed) * 2 >= high:
                return True
    return False


def _row_problems(rows: list[ManifestRow], known: tuple[str, ...]) -> list[Problem]:
    """Per-row checks: known labels, clean caption, duplicates (paths are checked by `file_problems`)."""
    problems: list[Problem] = []
    seen: dict[tuple[str, int | None, str], int] = {}
    for row in rows:
        try:
            parse_labels(row.labels, known)
        except UserError as err:
            problems.append(Problem(row.row_number, row.path, str(err)))
        problems += [Problem(row.row_number, row.path, msg) for msg in caption_problems(row.caption)]
        key = (row.path, row.fold, row.split)
        if key in seen:
            problems.append(Problem(row.row_number, row.path, f"duplicate of {_row_ref(seen[key])} (same path, "
                                                              f"fold and split); delete one"))
        else:
            seen[key] = row.row_number
    return problems


def _fold_problems(rows: list[ManifestRow]) -> list[Problem]:
    """Folds all empty or all integers; a path is test in one fold at most and never train+test in a fold."""
    problems: list[Problem] = []
    with_fold = sum(r.fold is not None for r in rows)
    if 0 < with_fold < len(rows):
        problems += [Problem(r.row_number, r.path, "fold is empty but other rows have folds; give every row a "
                                                   "fold, or none for a single-split dataset")
                     for r in rows if r.fold is None]
    test_fold: dict[str, tuple[int | None, int]] = {}
    split_in_fold: dict[tuple[str, int | None], tuple[str, int]] = {}
    for row in rows:
        first = split_in_fold.setdefault((row.path, row.fold), (row.split, row.row_number))
        if first[0] != row.split:
            problems.append(Problem(row.row_number, row.path, f"{row.split} here but {first[0]} in "
                                                              f"{_row_ref(first[1])} of the same fold; a sample "
                                                              f"is train or test"))
        if row.split == "test":
            fold, line = test_fold.setdefault(row.path, (row.fold, row.row_number))
            if fold != row.fold:
                problems.append(Problem(row.row_number, row.path, f"test in fold {row.fold} and also in fold "
                                                                  f"{fold} ({_row_ref(line)}); a sample is test "
                                                                  f"in one fold"))
    return problems


def outside_root(rel: str, root: str | Path) -> str | None:
    """Why a manifest path must not be opened (absolute, `..`, or resolving outside the root), else None.

    Args:
        rel: the path as written in the manifest.
        root: the dataset root.
    """
    pure = PurePosixPath(rel.replace("\\", "/"))
    if pure.is_absolute() or Path(rel).is_absolute():
        return "path is absolute; write it relative to the dataset root (not opened)"
    if ".." in pure.parts:
        return "path contains '..'; write it relative to the dataset root, without '..' (not opened)"
    real, top = os.path.realpath(Path(root) / rel), os.path.realpath(root)
    if real != top and not real.startswith(top.rstrip(os.sep) + os.sep):
        return (f"path resolves to {real}, outside the dataset root {top} (a symbolic link); put the file "
                f"inside the root instead of linking to it (not opened)")
    return None


def _decode_problem(target: Path, check_decode: bool) -> str | None:
    """Why a video inside the root is unusable (missing, no frames, first frame unreadable), else None."""
    if not target.exists():
        return f"{target} does not exist"
    if not check_decode:
        return None
    try:
        with quiet_native_stderr():  # FFmpeg's own messages would interleave with the report
            count_frames(target)
            read_frames(target, [0])
    except UserError as err:  # DataError: missing, empty or corrupt
        return str(err)
    return None


def file_problems(rows: Sequence[_HasPath], root: str | Path, check_decode: bool = True,
                  progress: bool = False) -> list[Problem]:
    """Each distinct path stays inside the root, exists and, with `check_decode`, has a first frame that decodes.

    A path that is absolute or resolves outside `root` (symbolic links included) is reported and
    never opened.

    Args:
        rows: manifest or interview rows (anything with `path` and `row_number`).
        root: dataset root the paths are relative to.
        check_decode: also count the frames and decode the first one.
        progress: show a progress bar over the videos.
    Returns:
        one Problem per bad path, at its first row (later rows named in the message).
    """
    root = Path(root)
    by_path: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        by_path[row.path].append(row.row_number)
    def problem(rel: str) -> str | None:
        return outside_root(rel, root) or _decode_problem(root / rel, check_decode)

    messages = parallel_map(problem, list(by_path), "checking videos", progress, chunksize=16)  # on every core
    return [Problem(lines[0], rel, f"{message}{_also_rows(lines)}")
            for (rel, lines), message in zip(by_path.items(), messages) if message is not None]


def _class_names(row: ManifestRow) -> list[str]:
    """The row's classes as canonical lower-case names, empty parts dropped, each once."""
    parts = (p.strip().lower() for p in row.labels.split(COMPOUND_SEPARATOR))
    return list(dict.fromkeys(p for p in parts if p))


def _count_classes(report: ValidationReport, first_rows: list[ManifestRow], known: tuple[str, ...]) -> None:
    """Fill `class_counts` (classes that occur: known ones in their order, then the rest sorted) and `compound`."""
    classes: Counter[str] = Counter()
    for row in first_rows:
        names = _class_names(row)
        classes.update(names)
        report.compound += len(names) > 1
    report.class_counts = {c: classes[c] for c in known if classes[c]}
    report.class_counts.update({c: n for c, n in sorted(classes.items()) if c not in known})


EMPTY_MANIFEST = ("the manifest has no rows (a header only): add one row per sample, or build it with "
                  "`emoclip manifest`")


def validate_manifest(rows: list[ManifestRow], root: str | Path, check_decode: bool = True, progress: bool = False,
                      known: tuple[str, ...] = CANONICAL_CLASSES) -> ValidationReport:
    """Check a manifest against its dataset and count its samples.

    Args:
        rows: manifest rows (read with `read_manifest(path, known=None)` to see every bad label here).
        root: dataset root the paths are relative to.
        check_decode: also open every video / frame folder and decode its first frame.
        progress: show a progress bar over the videos.
        known: the allowed class names.
    Returns:
        ValidationReport; `report.ok` is False when a problem was found (problems sorted by row); a
        manifest without rows is a problem.
    """
    report = ValidationReport(num_rows=len(rows))
    report.split_counts = dict(Counter(r.split for r in rows))
    for row in rows:
        counts = report.fold_counts.setdefault(row.fold, {})
        counts[row.split] = counts.get(row.split, 0) + 1
    first_rows = list({r.path: r for r in reversed(rows)}.values())
    report.num_paths = len(first_rows)
    _count_classes(report, first_rows, known)
    problems = [] if rows else [Problem(0, "", EMPTY_MANIFEST)]
    problems += _row_problems(rows, known) + _fold_problems(rows)
    problems += file_problems(rows, root, check_decode, progress)
    report.problems = sorted(problems, key=lambda p: p.row_number)
    return report
