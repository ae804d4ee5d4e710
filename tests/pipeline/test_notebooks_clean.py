"""Committed notebooks: no execution metadata, no absolute paths, a parameters cell, checked metric cells."""
from __future__ import annotations

import nbformat
import pytest

from emoclip_lib.pipeline.nbtools import clean_notebook, problems
from emoclip_lib.pipeline.reproduce import NOTEBOOK_DIR, notebook_paths

NOTEBOOKS = notebook_paths(NOTEBOOK_DIR)


def test_there_are_numbered_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS][:1] == ["01"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_clean(path):
    assert problems(path) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_shape(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged `parameters`"
    assert "run_dir" in tagged[0].source and "seed" in tagged[0].source
    assert nb.metadata["kernelspec"]["name"] == "emoclip"  # registered by `make install`
    checked = [c for c in nb.cells if c.cell_type == "code" and "# NBVAL_CHECK_OUTPUT" in c.source]
    assert checked, "at least one rounded-metric cell is compared by nbval"
    assert all(c.get("outputs") for c in checked), "checked cells carry their committed outputs"


def test_problems_detects_metadata_and_absolute_paths(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(1)")
    cell.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00"}
    cell.outputs = [nbformat.v4.new_output("stream", text="saved to /home/alice/runs/x.json\n")]
    nb.cells = [cell]
    nb.metadata["papermill"] = {"duration": 3.0}
    path = tmp_path / "dirty.ipynb"
    nbformat.write(nb, path)
    found = " ".join(problems(path))
    assert "papermill" in found and "execution" in found and "/home/alice/runs/x.json" in found
    nbformat.write(clean_notebook(nb), path)
    assert [p for p in problems(path) if "absolute path" not in p] == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_parameter_is_visible_to_papermill(path):
    """papermill skips lines it cannot parse (a `;` or `=` in a comment): such a parameter would be unknown."""
    import re

    from emoclip_lib.pipeline.reproduce import notebook_parameters

    nb = nbformat.read(path, as_version=4)
    source = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", [])).source
    assigned = set(re.findall(r"^(\w+)\s*=", source, flags=re.M))
    assert assigned == set(notebook_parameters(path))
