"""Several trainings at a time: each in a fresh worker process (spawned: no forked OpenMP or Lightning state)
with its share of this process' CPU threads."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TypeVar

import torch

Result = TypeVar("Result")


def run_jobs(calls: Sequence[Callable[[], Result]], jobs: int) -> Iterator[Result]:
    """The results of ``calls`` (module-level functions or partials of them, so that they reach the workers)
    as each finishes, ``jobs`` at a time (1: here, in order). A failing call, or Ctrl-C, stops the queued
    ones from starting and raises."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if jobs == 1:
        yield from (call() for call in calls)
        return
    threads = max(1, torch.get_num_threads() // jobs)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=spawn, initializer=torch.set_num_threads, initargs=(threads,)) as pool:
        runs = [pool.submit(call) for call in calls]
        try:
            for run in as_completed(runs):
                yield run.result()
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
