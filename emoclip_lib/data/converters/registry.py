"""Official dataset releases -> manifest rows: `convert(dataset, root)`, one converter per release.

The expected layouts are documented in data_manifests/README.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ...errors import UserError
from ..manifest import ManifestRow
from . import afew, dfew, ferv39k, mafw

CONVERTERS: dict[str, Callable[..., list[ManifestRow]]] = {
    "mafw": mafw.convert, "dfew": dfew.convert, "ferv39k": ferv39k.convert, "afew": afew.convert,
}
DATASETS: tuple[str, ...] = tuple(CONVERTERS)


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
    return CONVERTERS[name](root, **options)
