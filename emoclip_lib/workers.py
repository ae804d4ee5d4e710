"""Independent jobs on every CPU core, in forked worker processes: rendering clips, drawing pictures, training models.

Each job depends only on its own input, so the results are the same in any order and come back in input order.
Workers are forked (the function is inherited, never pickled) and run torch on one thread each, one job per core:
a forked process that enters an OpenMP parallel region of its parent's runtime can hang (seen here with two
threads per worker), and torch's kernels barely use a second thread on the synthetic profile's small matrices (a
leave-one-class-out training: 22.9 s on one thread, 24.7 s on two; all eleven in two workers: 14.7 s instead of
24.7 s). A training's numbers depend on its thread count at the level of float rounding (weight-gradient
reductions are split by thread), so jobs in workers give what the same jobs give one after another on one
thread (`tests/pipeline/test_parallel_trainings.py`), and no longer depend on the machine's core count.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import torch
from tqdm.auto import tqdm

T = TypeVar("T")
R = TypeVar("R")
_TASK: Callable | None = None  # the function the forked workers run (inherited, never pickled)
_IN_WORKER = False  # True in a forked worker: its own parallel maps run in it (one job per core already)


def cpu_count() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def can_fork() -> bool:
    """Whether worker processes can be forked here (POSIX fork, not changed to spawn/forkserver)."""
    return hasattr(os, "fork") and multiprocessing.get_start_method(allow_none=True) in (None, "fork")


def torch_workers(device: torch.device, jobs: int) -> int:
    """Worker processes for `jobs` independent torch jobs (trainings, videos to embed): one per core (at most one
    per job) on the CPU; 1 (this process) on CUDA (a CUDA context does not survive a fork), under torchrun, or
    where fork is unavailable.

    Args:
        device: where the jobs run their models.
        jobs: number of jobs.
    """
    if device.type != "cpu" or int(os.environ.get("WORLD_SIZE", "1")) > 1 or not can_fork() or _IN_WORKER:
        return 1
    return max(1, min(cpu_count(), jobs))


@contextlib.contextmanager
def torch_threads(num_threads: int | None, device: torch.device) -> Iterator[None]:
    """Run the block on `num_threads` torch CPU threads (CPU devices only), then restore torch's setting.

    Args:
        num_threads: threads inside the block; None keeps torch's setting.
        device: where the block computes (nothing changes on a GPU).
    """
    previous = torch.get_num_threads()
    try:
        if num_threads is not None and device.type == "cpu":
            torch.set_num_threads(int(num_threads))
        yield
    finally:
        torch.set_num_threads(previous)


def _run(item: object) -> object:
    assert _TASK is not None
    return _TASK(item)


def _one_thread() -> None:
    global _IN_WORKER
    _IN_WORKER = True
    torch.set_num_threads(1)  # one job per core; also keeps the forked OpenMP runtime out of parallel regions


def parallel_map(fn: Callable[[T], R], items: Sequence[T], desc: str, progress: bool = True,
                 workers: int | None = None, chunksize: int = 4) -> Iterator[R]:
    """`map(fn, items)` in forked worker processes, results in input order (`fn` is inherited, not pickled).

    Args:
        fn: a function of one item (its items and results must pickle; closures are fine).
        items: its inputs.
        desc: progress-bar label.
        progress: show a progress bar.
        workers: processes (default: `cpu_count()`; 1 runs in this process, as do a platform without fork and a
            call made inside a worker).
        chunksize: items sent to a worker at a time (1 for few long jobs such as trainings).
    """
    workers = cpu_count() if workers is None else int(workers)
    if workers == 1 or len(items) < 2 or not can_fork() or _IN_WORKER:
        results: Iterable[R] = map(fn, items)
        yield from tqdm(results, total=len(items), desc=desc, disable=not progress)
        return
    global _TASK
    previous, _TASK = _TASK, fn
    try:
        with ProcessPoolExecutor(min(workers, len(items)), mp_context=multiprocessing.get_context("fork"),
                                 initializer=_one_thread) as pool:
            yield from tqdm(pool.map(_run, items, chunksize=chunksize), total=len(items), desc=desc,
                            disable=not progress)
    finally:
        _TASK = previous


def parallel_run(fn: Callable[[T], None], items: Sequence[T], desc: str, progress: bool = True) -> None:
    """Run `fn` on every item in forked workers for its side effects (files it writes); see `parallel_map`.

    Args:
        fn: a function of one item that returns nothing.
        items: its inputs.
        desc: progress-bar label.
        progress: show a progress bar.
    """
    for _ in parallel_map(fn, items, desc, progress):
        pass
