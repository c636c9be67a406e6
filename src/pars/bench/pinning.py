"""`--pin`: the model worker alone on the CPUs vLLM bound it to, the engine core and the front end on the rest.

As on a GPU server, where the model runs on the accelerator and nothing the host does slows a forward pass.
vLLM's CPU backend already binds its worker's OpenMP threads to one set of CPUs and reserves the others for
the engine core (vllm/utils/ompmultiprocessing.py), but leaves the engine core and the API server free to
run anywhere: unpinned, a front end that scores (or any host work) lands on the worker's CPU now and then
and slows steps by chance. An earlier `--pin` put the engine core AND its worker on one CPU, where the two
busy-polling processes fought (FCFS capacity 12-16 req/s between repeats against 18 unpinned). Linux only;
every thread of each process is pinned (`sched_setaffinity` acts on one thread at a time).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class PinningError(RuntimeError):
    """The CPUs cannot be split as `--pin` promises."""


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


def worker_cpus(available: set[int], bound: dict[int, set[int]]) -> tuple[set[int], set[int]]:
    """(the CPUs of the processes bound to fewer than `available`: vLLM's model workers, the rest: the host's).
    `bound` maps each engine process to its CPUs. Pure, for tests."""
    workers = {cpu for cpus in bound.values() if cpus < available for cpu in cpus}
    host = available - workers
    if not workers or not host:
        raise PinningError(f"--pin needs vLLM's model worker bound to some of the CPUs {sorted(available)} "
                           f"(VLLM_CPU_OMP_THREADS_BIND=auto, the default) and one CPU left for the host; "
                           f"the engine's processes may use {sorted(map(sorted, bound.values()))}")
    return workers, host


def pin_now() -> str:
    """Pin this process and its descendants that vLLM left unbound (the engine core) to the CPUs the model
    worker does not use; the worker keeps its own. Returns the split, e.g. "worker CPUs [0], host CPUs [1]"."""
    available = os.sched_getaffinity(0)
    bound = {}
    for child in child_pids(os.getpid()):
        try:
            bound[child] = os.sched_getaffinity(child)
        except OSError:  # ended meanwhile
            continue
    workers, host = worker_cpus(available, bound)
    for child, cpus in bound.items():
        if cpus == available:
            pin_process(child, host)
    pin_process(os.getpid(), host)
    return f"worker CPUs {sorted(workers)}, host CPUs {sorted(host)} (engine core and front end)"


@contextmanager
def affinity_restored() -> Iterator[None]:
    """Afterwards this process and the children it keeps (multiprocessing's helpers) may use the CPUs this
    process could use before: a helper left pinned would pass for a bound worker at the next `pin_now`."""
    original = os.sched_getaffinity(0)
    try:
        yield
    finally:
        for pid in [os.getpid(), *child_pids(os.getpid())]:
            pin_process(pid, original)
