"""Rendering on every CPU core: each clip depends only on its own spec, so the output is the same in any order."""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
R = TypeVar("R")
_TASK: Callable | None = None  # the function the forked workers run (inherited, never pickled)


def _run(item: object) -> object:
    assert _TASK is not None
    return _TASK(item)


def parallel_map(fn: Callable[[T], R], items: Sequence[T], desc: str, progress: bool = True,
                 workers: int | None = None) -> Iterator[R]:
    """`map(fn, items)` in forked worker processes, results in input order (`fn` is inherited, not pickled).

    Args:
        fn: a function of one item (its items and results must pickle).
        items: its inputs.
        desc: progress-bar label.
        progress: show a progress bar.
        workers: processes (default: the cores this process may use; 1 runs in this process).
    """
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if workers == 1 or len(items) < 2 or multiprocessing.get_start_method(allow_none=True) not in (None, "fork"):
        results: Iterable[R] = map(fn, items)
        yield from tqdm(results, total=len(items), desc=desc, disable=not progress)
        return
    global _TASK
    previous, _TASK = _TASK, fn
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            yield from tqdm(pool.map(_run, items, chunksize=4), total=len(items), desc=desc, disable=not progress)
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
