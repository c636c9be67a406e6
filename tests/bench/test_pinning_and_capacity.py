"""Pinning the engine to its own CPU, the saturated burst capacity and goodput (pure parts and real affinity)."""

import math
import os
import subprocess
import sys

import pytest

from pars.bench.latency import RequestTiming, goodput_rps, saturated_rps
from pars.bench.pinning import PinningError, affinity_restored, pin_now, worker_cpus


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


def test_the_worker_keeps_its_cpus_and_the_host_gets_the_rest():
    assert worker_cpus({0, 1, 2}, {10: {0, 1, 2}, 11: {0}}) == ({0}, {1, 2})
    with pytest.raises(PinningError, match="bound to some of the CPUs"):
        worker_cpus({0, 1}, {10: {0, 1}})  # vLLM bound no worker (VLLM_CPU_OMP_THREADS_BIND=nobind)


def test_pin_now_moves_unbound_children_and_this_process_off_the_bound_worker_cpu():
    available = os.sched_getaffinity(0)
    if len(available) < 2:
        pytest.fail(f"this test needs 2 CPUs, the process may use {sorted(available)}")
    worker_cpu = min(available)
    worker = subprocess.Popen([sys.executable, "-c", f"import os, time; os.sched_setaffinity(0, {{{worker_cpu}}}); "
                                                     "print(flush=True); time.sleep(30)"], stdout=subprocess.PIPE)
    engine_core = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        worker.stdout.readline()  # it has bound itself, as vLLM binds its model worker
        with affinity_restored():
            split = pin_now()
            assert os.sched_getaffinity(worker.pid) == {worker_cpu}
            assert os.sched_getaffinity(engine_core.pid) == available - {worker_cpu}
            assert os.sched_getaffinity(0) == available - {worker_cpu}
            assert f"worker CPUs [{worker_cpu}]" in split
        assert os.sched_getaffinity(0) == available
    finally:
        for child in (worker, engine_core):
            child.kill()
            child.wait()
