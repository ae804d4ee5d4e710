"""The cached-feature dataset reads each entry file once while its memory budget allows."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emoclip_lib.errors import DataError
from emoclip_lib.train.cached_dataset import CachedClipDataset


def _entries(tmp_path: Path, n: int) -> list[str]:
    paths = []
    for i in range(n):
        path = tmp_path / f"entry{i}.npy"
        np.save(path, np.full((4, 8), float(i), dtype=np.float32))  # (T, D): 128 bytes
        paths.append(str(path))
    return paths


def test_entries_are_read_once_within_the_budget(tmp_path: Path) -> None:
    paths = _entries(tmp_path, 3)
    data = CachedClipDataset([paths], ["a", "b", "c"], memory_bytes=2 * 128)  # room for two entries
    first = [data[i]["features"].clone() for i in range(3)]
    for path in paths:
        Path(path).unlink()
    for i in range(2):  # kept: served from memory, equal to the first read
        assert torch.equal(data[i]["features"], first[i]) and float(first[i][0, 0]) == i
    with pytest.raises(DataError, match="entry2.npy"):  # over the budget: read again, and it is gone
        data[2]


def test_no_memory_reads_every_time(tmp_path: Path) -> None:
    paths = _entries(tmp_path, 1)
    data = CachedClipDataset([paths], ["a"], memory_bytes=0)
    assert float(data[0]["features"][0, 0]) == 0.0
    np.save(paths[0], np.full((4, 8), 7.0, dtype=np.float32))
    assert float(data[0]["features"][0, 0]) == 7.0
