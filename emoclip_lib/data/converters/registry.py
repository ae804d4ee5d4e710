"""Official dataset releases -> manifest rows: `convert(dataset, root)`, one converter per release.

The expected layouts are documented in data_manifests/README.md.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from ...errors import DataError, UserError
from ..manifest import ManifestRow
from . import afew, dfew, ferv39k, mafw
from .common import text_lines

CONVERTERS: dict[str, Callable[..., list[ManifestRow]]] = {
    "mafw": mafw.convert, "dfew": dfew.convert, "ferv39k": ferv39k.convert, "afew": afew.convert,
}
DATASETS: tuple[str, ...] = tuple(CONVERTERS)
DISPLAY_NAMES: dict[str, str] = {"mafw": "MAFW", "dfew": "DFEW", "ferv39k": "FERV39k", "afew": "AFEW"}  # as papers write them


def convert(dataset: str, root: str | Path, **options: object) -> list[ManifestRow]:
    """Build manifest rows from an official dataset release.

    Args:
        dataset: one of mafw, dfew, ferv39k, afew.
        root: the dataset's root folder (layouts in data_manifests/README.md).
        options: dataset-specific options (mafw: `subset` = "all", "single" or "compound").
    Raises:
        UserError: for an unknown dataset or a layout that is not recognised (saying what was expected).
    """
    name = dataset.strip().lower()
    if name not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"dataset root {root} is not a folder; pass the folder of the {name.upper()} release")
    return with_subjects(CONVERTERS[name](root, **options), root)


SUBJECTS_FILE = "subjects.csv"  # optional, beside a release: `path,subject` (path as in the manifest)


def with_subjects(rows: list[ManifestRow], root: Path) -> list[ManifestRow]:
    """Fill in the rows' subjects from `<root>/subjects.csv` when the release folder has one.

    The official releases carry no identities; a `subjects.csv` (`path,subject`, one line per clip, the
    path as the manifest writes it) makes the validation split and the stand-in backbone's pretraining
    batches subject-aware. Clips it does not list keep an empty subject.

    Args:
        rows: converted rows.
        root: the release folder.
    """
    path = root / SUBJECTS_FILE
    if not path.is_file():
        return rows
    subjects: dict[str, str] = {}
    for line, text in text_lines(path):
        fields = [f.strip() for f in text.split(",")]
        if line == 1 and fields[:2] == ["path", "subject"]:
            continue
        if len(fields) != 2 or not all(fields):
            raise DataError(f"{path}:{line}: expected `path,subject`, got {text[:80]!r}")
        subjects[fields[0]] = fields[1]
    return [dataclasses.replace(r, subject=subjects.get(r.path, r.subject)) for r in rows]
