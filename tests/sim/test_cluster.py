import numpy as np
import pytest

from pars.sim import EngineConfig, SimRequest, StepProfile, oracle_size, simulate
from pars.sim.cluster import simulate_cluster

TEN_MS = StepProfile("ten-ms", "test", base_s=0.01, per_prefill_token_s=0.0, per_decode_seq_s=0.0, per_kv_token_s=0.0)
PROFILE = StepProfile("hand", "test", base_s=0.01, per_prefill_token_s=0.001, per_decode_seq_s=0.002,
                      per_kv_token_s=0.0001)
CONFIG = EngineConfig(num_kv_blocks=1000, max_num_seqs=4)


def workload(n=200, seed=0):
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(0.02, n))
    outputs = rng.integers(1, 120, n)
    return [SimRequest(i, float(arrivals[i]), int(rng.integers(1, 200)), int(outputs[i]), oracle_size(int(outputs[i])))
            for i in range(n)]


def test_a_cluster_of_one_replica_is_the_replica_itself():
    requests = workload()
    alone = simulate(requests, PROFILE, CONFIG)
    cluster = simulate_cluster(requests, PROFILE, CONFIG, replicas=1, balancer="round-robin")
    np.testing.assert_allclose(cluster.result.finish_s, alone.finish_s, rtol=0, atol=1e-9)
    np.testing.assert_allclose(cluster.result.first_token_s, alone.first_token_s, rtol=0, atol=1e-9)
    assert cluster.per_replica == (len(requests),)


def test_round_robin_alternates_and_results_come_back_in_input_order():
    requests = workload(n=101)
    cluster = simulate_cluster(requests, PROFILE, CONFIG, replicas=2, balancer="round-robin")
    assert cluster.per_replica == (51, 50)
    assert cluster.replica.tolist() == [i % 2 for i in range(101)]
    assert cluster.result.index.tolist() == list(range(101))
    assert np.all(cluster.result.finish_s > cluster.result.arrival_s)


def test_least_work_sends_short_requests_away_from_a_replica_busy_with_a_long_one_and_releases_finished_work():
    # r0: 100 tokens (1.0 s), r1 and r2: 2 tokens each; r3 arrives after r0 has finished
    requests = [SimRequest(0, 0.0, 1, 100), SimRequest(1, 0.0, 1, 2), SimRequest(2, 0.5, 1, 2), SimRequest(3, 1.5, 1, 2)]
    work = {0: 4000.0, 1: 16.0, 2: 16.0, 3: 16.0}
    least_work = simulate_cluster(requests, TEN_MS, CONFIG, 2, "least-work", work_of=lambda r: work[r.index])
    round_robin = simulate_cluster(requests, TEN_MS, CONFIG, 2, "round-robin", work_of=lambda r: work[r.index])
    # least-work: r0 -> A, r1 -> B, r2 -> B (A still holds 4000), r3 -> A only if r0's work was released when it
    # finished at 1.0 s (then both hold none and A was sent fewer)
    assert least_work.replica.tolist() == [0, 1, 1, 0]
    assert round_robin.replica.tolist() == [0, 1, 0, 1]
    assert least_work.result.finish_s.tolist() == pytest.approx([1.0, 0.02, 0.52, 1.52])


def test_router_scoring_delays_every_request_in_one_fifo():
    requests = [SimRequest(i, 0.0, 1, 1) for i in range(3)]
    cluster = simulate_cluster(requests, TEN_MS, CONFIG, 3, "round-robin", router_scoring_ms=5.0)
    # each alone on its replica: enters after 5, 10, 15 ms of scoring, then one 10 ms step
    assert cluster.result.finish_s.tolist() == pytest.approx([0.015, 0.020, 0.025])
