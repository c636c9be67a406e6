"""`--pin`: the engine core on its own CPU, the front end (this process: requests, scoring) on the others.

As on a GPU server, where the engine's step loop does not share a processor with the API server. Linux
only; every thread of each process is pinned (`sched_setaffinity` acts on one thread at a time).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def child_pids(pid: int) -> list[int]:
    """Every descendant process of `pid` (the engine core and anything it started)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return children + [grandchild for child in children for grandchild in child_pids(child)]


def pin_process(pid: int, cpus: set[int]) -> None:
    """Pin every thread of process `pid` to `cpus` (threads it starts later inherit their creator's set)."""
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except (OSError, ValueError):  # the thread ended meanwhile
            continue


def split_cpus() -> tuple[set[int], set[int]]:
    """(front-end CPUs, engine CPUs): the engine gets the last CPU this process may use, the front end the rest."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        raise ValueError(f"--pin needs at least 2 CPUs; this process may use {len(available)}")
    return set(available[:-1]), {available[-1]}


@contextmanager
def affinity_restored() -> Iterator[None]:
    """Afterwards this process may use the CPUs it could use before (pinning changed them)."""
    original = os.sched_getaffinity(0)
    try:
        yield
    finally:
        pin_process(os.getpid(), original)


def pin_now(front: set[int], engine: set[int]) -> None:
    """Pin this process's descendants (a freshly started engine core) to `engine`, this process to `front`."""
    for child in child_pids(os.getpid()):
        pin_process(child, engine)
    pin_process(os.getpid(), front)
