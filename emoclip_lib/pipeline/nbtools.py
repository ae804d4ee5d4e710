"""Keep committed notebooks clean: no execution metadata, no absolute paths; refresh their outputs.

`python -m emoclip_lib.pipeline.nbtools refresh` re-executes every numbered notebook in place with its default
(synthetic-profile) parameters, then strips papermill/execution metadata so the diff holds only outputs.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

from .reproduce import NOTEBOOK_DIR, REPO_ROOT, notebook_paths

VOLATILE_CELL_KEYS = ("execution", "papermill", "collapsed", "scrolled")
ABSOLUTE_PATH = re.compile(r"(?<![\w.])(/(?:home|root|tmp|work|Users|usr|opt|var)/[\w.\-/]+)")


def clean_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove execution metadata (timestamps, papermill records) from a notebook, in place.

    Args:
        nb: a notebook read with nbformat.
    """
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = {"display_name": "Python (emoclip)", "language": "python", "name": "emoclip"}
    for cell in nb.cells:
        for key in VOLATILE_CELL_KEYS:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            for out in cell.get("outputs", []):
                out.get("metadata", {}).pop("papermill", None)
    return nb


def problems(path: Path) -> list[str]:
    """What makes a committed notebook unclean: execution metadata or absolute paths.

    Args:
        path: notebook file.
    """
    nb = nbformat.read(path, as_version=4)
    found = []
    if "papermill" in nb.metadata:
        found.append(f"{path.name}: notebook metadata has a papermill record")
    for i, cell in enumerate(nb.cells):
        keys = [k for k in VOLATILE_CELL_KEYS[:2] if k in cell.metadata]
        if keys:
            found.append(f"{path.name} cell {i}: execution metadata {keys}")
        text = nbformat.writes(nbformat.from_dict({"cells": [cell], "metadata": {}, "nbformat": 4,
                                                   "nbformat_minor": 5}))
        for match in ABSOLUTE_PATH.findall(text):
            found.append(f"{path.name} cell {i}: absolute path {match}")
    return found


def refresh(paths: list[Path] | None = None) -> None:
    """Execute notebooks in place with their default parameters and clean them.

    Args:
        paths: notebooks to refresh (default: all numbered notebooks, in order).
    """
    import papermill

    for path in [p.resolve() for p in paths or notebook_paths(NOTEBOOK_DIR)]:
        papermill.execute_notebook(str(path), str(path), cwd=str(path.parent), kernel_name="emoclip")
        nb = clean_notebook(nbformat.read(path, as_version=4))
        nbformat.write(nb, path)
        print(f"refreshed {path.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    if sys.argv[1:2] != ["refresh"]:
        sys.exit("usage: python -m emoclip_lib.pipeline.nbtools refresh [NOTEBOOK...]")
    refresh([Path(p) for p in sys.argv[2:]] or None)
