"""Pinning the engine to its own CPU, the saturated burst capacity and goodput (pure parts and real affinity)."""

import math
import os
import subprocess
import sys

import pytest

from pars.bench.latency import RequestTiming, goodput_rps, saturated_rps
from pars.bench.pinning import affinity_restored, child_pids, pin_now, split_cpus


def timing(i: int, finish: float) -> RequestTiming:
    return RequestTiming(i, 0.0, finish / 2, finish, 10, 0.0)


def test_saturated_capacity_leaves_out_the_drain_of_the_last_batch():
    # 10 requests, 2 slots: 8 finish by t=4 (2/s while full); the last two drain slowly until t=20
    timings = [timing(i, (i // 2 + 1) * 1.0) for i in range(8)] + [timing(8, 12.0), timing(9, 20.0)]
    assert saturated_rps(timings, slots=2) == pytest.approx(8 / 4.0)
    assert saturated_rps(timings[:3], slots=2) == pytest.approx(3 / 2.0)  # too few to cut: n / makespan


def test_goodput_is_the_interpolated_rate_where_p90_crosses_the_slo():
    assert goodput_rps([1, 2, 3], [1.0, 2.0, 6.0], slo_s=4.0) == pytest.approx(2.5)
    assert goodput_rps([1, 2], [1.0, 2.0], slo_s=4.0) == 2
    assert goodput_rps([1, 2], [5.0, 6.0], slo_s=4.0) == 0.0
    assert math.isnan(goodput_rps([], [], slo_s=4.0))


def test_pin_now_puts_every_child_thread_on_the_engine_cpu_and_this_process_on_the_others():
    front, engine = split_cpus()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with affinity_restored():
            before = os.sched_getaffinity(0)
            pin_now(front, engine)
            assert child.pid in child_pids(os.getpid())
            assert os.sched_getaffinity(child.pid) == engine
            assert os.sched_getaffinity(0) == front
        assert os.sched_getaffinity(0) == before
    finally:
        child.kill()
        child.wait()
