"""Keep committed notebooks clean and their parameters cells in step with the settings; refresh their outputs.

`python -m emoclip_lib.pipeline.nbtools cells` rewrites every numbered notebook's `parameters` cell from
`settings.PARAMETERS` (names, comments, defaults). `python -m emoclip_lib.pipeline.nbtools refresh`
re-executes every numbered notebook in place with its default (synthetic-profile) parameters, then strips
papermill/execution metadata so the diff holds only outputs.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

from .reproduce import NOTEBOOK_DIR, execute_notebook, notebook_paths
from .run_dir import REPO_ROOT
from .settings import PARAMETERS, stage_parameters

VOLATILE_CELL_KEYS = ("execution", "papermill", "collapsed", "scrolled")
ABSOLUTE_PATH = re.compile(r"(?<![\w.])(/(?:home|root|tmp|work|Users|usr|opt|var)/[\w.\-/]+)")


PARAMETERS_HEADER = (
    'run_dir = "../runs/notebooks"  # run directory shared by the notebooks\n'
    'profile = "synthetic"  # profiles/NAME.yaml or a YAML path; each parameter below left at None takes the\n'
    '                       # profile\'s value, else the default in brackets (the paper\'s recipe)\n')


def parameters_cell(stage: str) -> str:
    """The source of a notebook's `parameters` cell: run_dir, profile and every parameter the stage reads.

    Args:
        stage: two-digit notebook number.
    """
    names = stage_parameters(stage)
    width = max(len(n) for n in names) + len(" = None")
    lines = [f"{(n + ' = None'):<{width}}  # {PARAMETERS[n].comment} [{PARAMETERS[n].default!r}]" for n in names]
    return PARAMETERS_HEADER + "\n".join(lines)


def write_parameters_cells(paths: list[Path] | None = None) -> None:
    """Rewrite the `parameters` cell of the numbered notebooks from `settings.PARAMETERS`.

    Args:
        paths: notebooks (default: all numbered notebooks).
    """
    for path in paths or notebook_paths(NOTEBOOK_DIR):
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        cell.source = parameters_cell(path.stem[:2])
        nbformat.write(nb, path)


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
    for path in [p.resolve() for p in paths or notebook_paths(NOTEBOOK_DIR)]:
        execute_notebook(path, path, {}, "emoclip")
        nb = clean_notebook(nbformat.read(path, as_version=4))
        nbformat.write(nb, path)
        print(f"refreshed {path.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    if sys.argv[1:2] not in (["refresh"], ["cells"]):
        sys.exit("usage: python -m emoclip_lib.pipeline.nbtools refresh|cells [NOTEBOOK...]")
    (refresh if sys.argv[1] == "refresh" else write_parameters_cells)([Path(p) for p in sys.argv[2:]] or None)
