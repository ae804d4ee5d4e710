"""Dataset manifests: one CSV schema for every video dataset, plus the interview-manifest schema.

A sample manifest has the columns `path,labels,caption,split,fold,subject` (any order, UTF-8):
`path` is relative to the dataset root (a video file or a folder of frames), `labels` holds canonical
class names joined by `+`, `split` is `train` or `test`, `fold` an integer or empty, and a sample
belonging to several folds has one row per fold. See data_manifests/README.md.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from .classes import CANONICAL_CLASSES, COMPOUND_SEPARATOR, parse_labels
from ..errors import DataError, UserError
from ..io_utils import atomic_write

MANIFEST_COLUMNS: tuple[str, ...] = ("path", "labels", "caption", "split", "fold", "subject")
SPLITS: tuple[str, ...] = ("train", "test")
INTERVIEW_ID_COLUMNS: tuple[str, ...] = ("path", "subject", "session")


@dataclass(frozen=True)
class ManifestRow:
    """One sample of one fold.

    `labels` is the manifest field (`anger` or `anger+disgust`); `fold` is None for single-split
    datasets; `row_number` is the line in the manifest file (0 for rows built in memory).
    """

    path: str
    labels: str
    caption: str = ""
    split: str = "train"
    fold: int | None = None
    subject: str = ""
    row_number: int = field(default=0, compare=False)

    @property
    def label_list(self) -> list[str]:
        """The component classes, in order (one for single-label samples)."""
        return [p.strip() for p in self.labels.split(COMPOUND_SEPARATOR)]


@dataclass(frozen=True)
class InterviewRow:
    """One interview video with its symptom scores (None where the score is missing)."""

    path: str
    subject: str
    session: str
    scores: dict[str, float | None]
    row_number: int = field(default=0, compare=False)


def _open_records(path: str | Path, kind: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Read a UTF-8 CSV file into (header, [(line number, fields)]), with people-friendly errors."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{kind} {path} does not exist: check the path (create one with `emoclip manifest`)")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 ({err.reason}); re-save the file as UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    records: list[tuple[int, list[str]]] = []
    try:
        previous_end = 0
        for fields in reader:
            records.append((previous_end + 1, fields))
            previous_end = reader.line_num
    except csv.Error as err:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV ({err}); check the quoting") from None
    records = [(n, f) for n, f in records if any(x.strip() for x in f)]
    if not records:
        raise DataError(f"{path}: empty file; a {kind} starts with a header line")
    return [h.strip() for h in records[0][1]], records[1:]


def _check_header(path: str | Path, header: list[str], required: tuple[str, ...], extra_ok: bool) -> None:
    """Raise DataError for a duplicate, unknown (unless `extra_ok`) or missing column."""
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataError(f"{path}:1: column {name!r} appears twice in the header; keep one")
        seen.add(name)
        if not extra_ok and name not in required:
            raise DataError(f"{path}:1: unknown column {name!r}; the header must be {','.join(required)}")
    missing = [c for c in required if c not in seen]
    if missing:
        raise DataError(f"{path}:1: missing column(s) {', '.join(missing)}; the header must include "
                        f"{','.join(required)}")


def _as_dict(path: str | Path, line: int, header: list[str], fields: list[str]) -> dict[str, str]:
    """Zip one record with the header, checking the field count."""
    if len(fields) != len(header):
        raise DataError(f"{path}:{line}: {len(fields)} fields but the header has {len(header)}; "
                        f"quote fields that contain commas")
    return {name: value.strip() for name, value in zip(header, fields)}


def _parse_row(path: str | Path, line: int, rec: dict[str, str], known: tuple[str, ...] | None) -> ManifestRow:
    """Turn one record into a ManifestRow, raising DataError on a bad value."""
    where = f"{path}:{line}"
    if not rec["path"]:
        raise DataError(f"{where}: empty path; every row needs the sample's path relative to the dataset root")
    split = rec["split"].lower()
    if split not in SPLITS:
        raise DataError(f"{where}: split {rec['split']!r} is not one of {'/'.join(SPLITS)}")
    fold: int | None = None
    if rec["fold"]:
        try:
            fold = int(rec["fold"])
        except ValueError:
            raise DataError(f"{where}: fold {rec['fold']!r} is not an integer; write e.g. 1, or leave it "
                            f"empty for a dataset with a single split") from None
    labels = rec["labels"]
    if known is not None:
        try:
            labels = COMPOUND_SEPARATOR.join(parse_labels(labels, known))
        except UserError as err:
            raise DataError(f"{where}: {err}") from None
    return ManifestRow(path=rec["path"], labels=labels, caption=rec["caption"], split=split, fold=fold,
                       subject=rec["subject"], row_number=line)


def read_manifest(path: str | Path, known: tuple[str, ...] | None = CANONICAL_CLASSES) -> list[ManifestRow]:
    """Read a sample manifest.

    Args:
        path: the CSV file.
        known: the allowed class names; None skips the label check (used by `validate_manifest`,
            which reports unknown labels as problems instead of stopping at the first).
    Raises:
        DataError: naming the file and line of a bad header, field count, split, fold or label.
    """
    header, records = _open_records(path, "manifest")
    _check_header(path, header, MANIFEST_COLUMNS, extra_ok=False)
    return [_parse_row(path, line, _as_dict(path, line, header, fields), known) for line, fields in records]


def write_manifest(rows: list[ManifestRow], path: str | Path) -> None:
    """Write rows to a manifest atomically (a temporary file in the same folder, then os.replace).

    Args:
        rows: the samples, written in the given order.
        path: destination CSV; parent folders are created.
    """
    def write(tmp: Path) -> None:
        """Write the header and rows to the temporary file."""
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(MANIFEST_COLUMNS)
            for row in rows:
                fold = "" if row.fold is None else str(row.fold)
                writer.writerow([row.path, row.labels, row.caption, row.split, fold, row.subject])

    atomic_write(path, write)


def write_interview_manifest(rows: list[InterviewRow], items: list[str], path: str | Path) -> None:
    """Write an interview manifest (`path,subject,session,<items>`) atomically; missing scores stay empty.

    Args:
        rows: the videos, written in the given order.
        items: the score columns, in order.
        path: destination CSV; parent folders are created.
    """
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow([*INTERVIEW_ID_COLUMNS, *items])
            for row in rows:
                scores = ["" if row.scores.get(i) is None else row.scores[i] for i in items]
                writer.writerow([row.path, row.subject, row.session, *scores])

    atomic_write(path, write)


def folds(rows: list[ManifestRow]) -> list[int]:
    """The sorted distinct folds of a manifest ([] for a single-split dataset).

    Args:
        rows: manifest rows.
    """
    return sorted({r.fold for r in rows if r.fold is not None})


def select(rows: list[ManifestRow], fold: int | None = None, split: str | None = None) -> list[ManifestRow]:
    """Keep the rows of one fold and/or split (None keeps all).

    Args:
        rows: manifest rows.
        fold: fold number; must exist in `rows`.
        split: `train` or `test`.
    Raises:
        UserError: for an unknown split or a fold the manifest does not have.
    """
    if split is not None and split not in SPLITS:
        raise UserError(f"split {split!r} is not one of {'/'.join(SPLITS)}")
    if fold is not None:
        available = folds(rows)
        if fold not in available:
            have = ", ".join(map(str, available)) if available else "none (single-split dataset: use fold=None)"
            raise UserError(f"fold {fold} is not in the manifest; folds available: {have}")
    return [r for r in rows if (fold is None or r.fold == fold) and (split is None or r.split == split)]


def _parse_score(path: str | Path, line: int, item: str, text: str) -> float | None:
    """One symptom score: empty -> None; anything not a finite number -> DataError."""
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DataError(f"{path}:{line}: score {text!r} for item {item!r} is not a number; write a number "
                        f"or leave the field empty when the score is missing")
    return value


def read_interview_manifest(path: str | Path) -> tuple[list[InterviewRow], list[str]]:
    """Read an interview manifest: `path,subject,session` then one numeric column per symptom item.

    Args:
        path: the CSV file.
    Returns:
        (rows, item names in column order).
    Raises:
        DataError: naming the file and line of a bad header, empty path/subject or non-numeric score.
    """
    header, records = _open_records(path, "interview manifest")
    _check_header(path, header, INTERVIEW_ID_COLUMNS, extra_ok=True)
    items = [h for h in header if h not in INTERVIEW_ID_COLUMNS]
    if not items:
        raise DataError(f"{path}:1: no symptom-item columns; add one numeric column per item after "
                        f"{','.join(INTERVIEW_ID_COLUMNS)}")
    if any(not name for name in items):
        raise DataError(f"{path}:1: a column has an empty name; name every symptom-item column")
    rows: list[InterviewRow] = []
    for line, fields in records:
        rec = _as_dict(path, line, header, fields)
        for column in ("path", "subject"):
            if not rec[column]:
                raise DataError(f"{path}:{line}: empty {column}; every interview needs a path and a subject")
        scores = {item: _parse_score(path, line, item, rec[item]) for item in items}
        rows.append(InterviewRow(rec["path"], rec["subject"], rec["session"], scores, row_number=line))
    return rows, items

