import math

import numpy as np
import pytest

from pars.bench.latency import summarise
from pars.scheduling import AgingRule
from pars.sim import FCFS_SIZE, EngineConfig, SimRequest, StepProfile, oracle_size, simulate

PROFILE = StepProfile("hand", "test", base_s=0.01, per_prefill_token_s=0.001, per_decode_seq_s=0.002,
                      per_kv_token_s=0.0001)
TEN_MS = StepProfile("ten-ms", "test", base_s=0.01, per_prefill_token_s=0.0, per_decode_seq_s=0.0,
                     per_kv_token_s=0.0)


def run(requests, profile=PROFILE, aging=AgingRule(), leap=True, **config):
    steps = []
    config = {"num_kv_blocks": 1000, **config}
    result = simulate(requests, profile, EngineConfig(**config), aging, on_step=steps.append, leap=leap)
    return result, steps


def random_workload(n=300, seed=0, sizes="oracle"):
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(0.02, n))
    prompts = rng.integers(1, 300, n)
    outputs = rng.integers(1, 120, n)
    return [SimRequest(i, float(arrivals[i]), int(prompts[i]), int(outputs[i]),
                       oracle_size(int(outputs[i])) if sizes == "oracle" else FCFS_SIZE) for i in range(n)]


@pytest.mark.parametrize("leap", [True, False])
def test_a_lone_request_gets_one_prefill_step_then_one_decode_step_per_further_token(leap):
    result, steps = run([SimRequest(7, 1.0, prompt_tokens=10, output_tokens=4)], leap=leap)
    prefill = 0.01 + 10 * 0.001 + 10 * 0.0001  # kv = the 10 prompt tokens
    decodes = [0.01 + 0.002 + kv * 0.0001 for kv in (11, 12, 13)]  # context grows one token a step
    (timing,) = result.timings()
    assert timing.index == 7
    assert timing.first_token_s == pytest.approx(1.0 + prefill)
    assert timing.finish_s == pytest.approx(1.0 + prefill + sum(decodes))
    assert timing.queueing_s == 0.0
    assert [s.kv_tokens for s in steps] == [10, 11, 12, 13]
    assert [s.sampled for s in steps] == [1, 1, 1, 1]


def two_requests_at_once():
    """A long request (10 tokens) arrives a moment before a short one (2 tokens); prompts of 5 tokens."""
    long, short = (SimRequest(i, 0.0, 5, n, oracle_size(n)) for i, n in enumerate((10, 2)))
    return [long, short]


def test_with_one_slot_fcfs_serves_arrival_order_and_oracle_sizes_serve_the_short_request_first():
    profile = StepProfile("p", "test", base_s=0.01, per_prefill_token_s=0.001, per_decode_seq_s=0.0,
                          per_kv_token_s=0.0)  # prefill step 0.015 s, decode step 0.010 s
    fcfs_requests = [SimRequest(r.index, r.arrival_s, r.prompt_tokens, r.output_tokens) for r in two_requests_at_once()]
    fcfs, _ = run(fcfs_requests, profile, max_num_seqs=1)
    sjf, _ = run(two_requests_at_once(), profile, max_num_seqs=1)
    long_alone, short_alone = 0.015 + 9 * 0.01, 0.015 + 0.01
    assert fcfs.finish_s.tolist() == pytest.approx([long_alone, long_alone + short_alone])
    assert sjf.finish_s.tolist() == pytest.approx([short_alone + long_alone, short_alone])
    assert summarise(fcfs.timings()).e2e.mean == pytest.approx(0.1175)
    assert summarise(sjf.timings()).e2e.mean == pytest.approx(0.0775)


def test_when_blocks_run_out_the_most_recently_admitted_request_is_preempted_and_all_still_finish():
    # Blocks of 4 tokens, 6 in all; three requests of 4-token prompts admitted in index order.
    requests = [SimRequest(i, 0.0, 4, 12, FCFS_SIZE) for i in range(3)]
    result, steps = run(requests, block_size=4, num_kv_blocks=6)
    preempted = [index for step in steps for index in step.preempted]
    assert preempted, "the cache is too small for three growing requests: someone must be preempted"
    assert preempted[0] == 2
    assert result.counters.preemptions == len(preempted)
    assert not np.isnan(result.finish_s).any()
    assert sum(step.sampled for step in steps) == 3 * 12  # each request got exactly its tokens, none lost
    assert max(step.blocks_used for step in steps) <= 6
    recompute = [step for step in steps if step.prefill_tokens > 4]
    assert recompute, "the victim prefills its prompt and its generated tokens again"


def test_every_step_respects_the_token_budget_the_sequence_limit_and_the_kv_capacity():
    result, steps = run(random_workload(), max_num_seqs=8, max_num_batched_tokens=64, num_kv_blocks=80,
                        block_size=16)
    assert max(step.scheduled_tokens for step in steps) == 64
    assert max(step.running for step in steps) == 8
    assert all(step.blocks_used <= 80 for step in steps)
    assert result.counters.max_step_tokens == 64 and result.counters.max_running == 8
    assert all(step.decode_seqs + (step.prefill_tokens > 0) <= step.running for step in steps)


def test_chunked_prefill_splits_a_long_prompt_across_steps_and_the_first_token_follows_the_last_chunk():
    result, steps = run([SimRequest(0, 0.0, 100, 2)], TEN_MS, max_num_batched_tokens=32)
    assert [s.prefill_tokens for s in steps] == [32, 32, 32, 4, 0]
    assert [s.sampled for s in steps] == [0, 0, 0, 1, 1]
    assert result.first_token_s[0] == pytest.approx(0.04)
    assert result.finish_s[0] == pytest.approx(0.05)


def test_running_decodes_take_their_token_before_a_new_prompt_gets_the_rest_of_the_budget():
    requests = [SimRequest(0, 0.0, 4, 50), SimRequest(1, 0.015, 100, 1)]
    _, steps = run(requests, TEN_MS, max_num_batched_tokens=32)
    joined = next(s for s in steps if s.start_s > 0.015)
    assert (joined.decode_seqs, joined.prefill_tokens, joined.scheduled_tokens) == (1, 31, 32)


def test_without_chunked_prefill_a_prompt_waits_for_a_step_whose_budget_holds_it_whole():
    requests = [SimRequest(0, 0.0, 4, 20), SimRequest(1, 0.015, 30, 1)]
    result, steps = run(requests, TEN_MS, max_num_batched_tokens=30, chunked_prefill=False)
    assert [s.prefill_tokens for s in steps if s.prefill_tokens] == [4, 30]
    assert result.first_token_s[1] == pytest.approx(0.21)  # 1 + 30 > 30: it waits until the first one ends
    with pytest.raises(ValueError, match="without chunked prefill"):
        run([SimRequest(0, 0.0, 40, 1)], TEN_MS, max_num_batched_tokens=30, chunked_prefill=False)


def test_front_end_scoring_delays_entry_fifo_and_counts_as_ttft_not_queueing():
    requests = [SimRequest(0, 0.0, 10, 1), SimRequest(1, 0.0, 10, 1)]
    result, steps = run(requests, TEN_MS, scoring_ms=20.0, scoring_where="front")
    assert [s.start_s for s in steps] == pytest.approx([0.02, 0.04])  # the second waits for the first's score
    assert result.first_token_s.tolist() == pytest.approx([0.03, 0.05])
    assert result.queueing_s.tolist() == pytest.approx([0.0, 0.0])


def test_engine_scoring_lengthens_the_step_after_the_arrivals():
    requests = [SimRequest(0, 0.0, 10, 3), SimRequest(1, 0.0, 10, 3)]
    _, steps = run(requests, TEN_MS, scoring_ms=20.0, scoring_where="engine")
    assert [s.duration_s for s in steps] == pytest.approx([0.05, 0.01, 0.01])


def test_max_wait_lets_an_old_long_request_go_before_shorter_ones_as_the_real_queue_orders():
    # One slot. A 1-token-prompt request runs 0-0.05 s; a long one arrives at 1 ms, nine short ones at 2-10 ms.
    requests = [SimRequest(0, 0.0, 1, 5, oracle_size(5)), SimRequest(1, 0.001, 1, 50, oracle_size(50))]
    requests += [SimRequest(i, 0.001 * i, 1, 2, oracle_size(2)) for i in range(2, 11)]
    by_size, _ = run(requests, TEN_MS, max_num_seqs=1)
    bounded, _ = run(requests, TEN_MS, AgingRule(max_wait_s=0.05), max_num_seqs=1)
    # By size, it waits for all nine (2 steps each) after the first request: admitted at 0.05 + 0.18.
    assert by_size.queueing_s[1] == pytest.approx(0.23 - 0.001)
    # Bounded, one short one goes at 0.05 (the long one has waited 0.049 < 0.05), then the long one at 0.07.
    assert bounded.queueing_s[1] == pytest.approx(0.07 - 0.001)
    assert bounded.first_token_s[2] == pytest.approx(0.06)


def test_leaps_give_exactly_the_step_by_step_result():
    requests = random_workload(n=400, seed=3)
    aging = AgingRule(rate=0.5, max_wait_s=2.0)
    config = {"max_num_seqs": 16, "max_num_batched_tokens": 256, "num_kv_blocks": 120, "block_size": 8}
    leaped, leaped_steps = run(requests, PROFILE, aging, leap=True, **config)
    stepped, stepped_steps = run(requests, PROFILE, aging, leap=False, **config)
    assert leaped.counters.leaps > 0 and stepped.counters.leaps == 0
    assert leaped.counters.preemptions > 0, "the workload should exercise preemption too"
    for name in ("first_token_s", "finish_s", "queueing_s"):
        np.testing.assert_allclose(getattr(leaped, name), getattr(stepped, name), rtol=0, atol=1e-9)
    assert leaped.counters.steps == stepped.counters.steps == len(stepped_steps) == len(leaped_steps)
    for a, b in zip(leaped_steps, stepped_steps):
        assert (a.kv_tokens, a.scheduled_tokens, a.blocks_used, a.sampled) == (
            b.kv_tokens, b.scheduled_tokens, b.blocks_used, b.sampled)
        assert a.start_s == pytest.approx(b.start_s, abs=1e-9)


def test_a_light_load_is_mostly_leaped_and_every_request_gets_a_timing():
    requests = random_workload(n=200, seed=5, sizes="fcfs")
    result = simulate(requests, PROFILE, EngineConfig(num_kv_blocks=1000))
    assert result.counters.leaps > 0
    timings = result.timings()
    assert [t.index for t in timings] == list(range(200))
    assert all(t.arrival_s <= t.first_token_s <= t.finish_s and t.queueing_s >= 0 for t in timings)
    assert not math.isnan(summarise(timings).e2e.p99)


def test_requests_out_of_arrival_order_or_too_big_for_the_cache_are_refused():
    with pytest.raises(ValueError, match="sort requests by arrival"):
        simulate([SimRequest(0, 1.0, 1, 1), SimRequest(1, 0.5, 1, 1)], PROFILE, EngineConfig(num_kv_blocks=10))
    with pytest.raises(ValueError, match="request 0 needs 200 tokens"):
        simulate([SimRequest(0, 0.0, 100, 101)], PROFILE, EngineConfig(num_kv_blocks=2, block_size=16))


def test_oracle_size_is_the_oracle_schedulers_log2_key_and_bad_requests_are_refused():
    assert oracle_size(7) == 3.0 and oracle_size(0) == 0.0
    with pytest.raises(ValueError, match="at least one token"):
        SimRequest(0, 0.0, prompt_tokens=0, output_tokens=5)
