"""workers.parallel_map: forked workers give the same results, in input order, as a plain map."""
from __future__ import annotations

import os

import numpy as np

from emoclip_lib.workers import parallel_map


def _frame(i: int) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 255, (4, 8, 8, 3), dtype=np.uint8)


def _pid(_: int) -> int:
    return os.getpid()


def test_parallel_results_equal_serial_in_order() -> None:
    items = list(range(23))
    forked = list(parallel_map(_frame, items, "t", progress=False, workers=3))
    serial = list(parallel_map(_frame, items, "t", progress=False, workers=1))
    assert len(forked) == len(items)
    assert all(np.array_equal(a, b) for a, b in zip(forked, serial))
    assert all(np.array_equal(a, _frame(i)) for i, a in enumerate(forked))


def test_workers_are_other_processes_and_one_worker_stays_here() -> None:
    assert set(parallel_map(_pid, list(range(8)), "t", progress=False, workers=2)) - {os.getpid()}
    assert set(parallel_map(_pid, list(range(8)), "t", progress=False, workers=1)) == {os.getpid()}


def _inner_pids(_: int) -> set[int]:
    return set(parallel_map(_pid, list(range(4)), "inner", progress=False, workers=2))


def test_a_map_inside_a_worker_runs_in_that_worker() -> None:
    for pids in parallel_map(_inner_pids, list(range(4)), "outer", progress=False, workers=2):
        assert len(pids) == 1 and pids != {os.getpid()}  # no process of its own per inner item
