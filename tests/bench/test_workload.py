"""Workload generation: test prompts only, deterministic under a seed, arrival processes and trace scaling."""

from __future__ import annotations

import numpy as np
import pytest

from pars.bench.traces import TRACES, load_trace, scale_trace
from pars.bench.workload import (
    ArrivalPlan,
    PoolPrompt,
    build_workload,
    length_hints,
    burst_arrivals,
    poisson_arrivals,
    prompt_pool,
    scale_length,
)
from pars.data import PromptSplit, load_records
from pars.paths import bundled_data_dir

TARGET = "gpt-3.5-turbo-1106"


@pytest.fixture(scope="module")
def records():
    return load_records(bundled_data_dir(), models=[TARGET])


@pytest.fixture(scope="module")
def pool(records):
    return prompt_pool(records, TARGET, PromptSplit(seed=0), max_prompt_chars=4000)


def test_pool_holds_only_test_split_prompts_with_the_target_models_lengths(records, pool):
    split = PromptSplit(seed=0)
    test = {r.prompt[:4000] for r in records if split.part_of(r.prompt) == "test"}
    trained = {r.prompt[:4000] for r in records if split.part_of(r.prompt) != "test"}
    truth = {r.prompt[:4000]: r.response_tokens for r in records}
    prompts = {p.prompt for p in pool}
    assert len(pool) > 100 and prompts <= test and not prompts & trained
    assert all(truth[p.prompt] == p.true_tokens for p in pool)


def test_unknown_target_model_raises(records):
    with pytest.raises(ValueError, match="no test-split prompts"):
        prompt_pool(records, "no-such-model", PromptSplit(seed=0))


def test_workload_is_deterministic_under_a_seed_and_changes_with_it(pool):
    def make(seed: int):
        return build_workload(pool, poisson_arrivals(50, 2.0, seed), "poisson", 2.0, 0.5, seed)

    assert make(3) == make(3)
    assert [r.prompt for r in make(3).requests] != [r.prompt for r in make(4).requests]
    assert not np.allclose([r.arrival_s for r in make(3).requests], [r.arrival_s for r in make(4).requests])


def test_prompts_cycle_through_the_whole_pool_before_repeating(pool):
    workload = build_workload(pool, burst_arrivals(len(pool) + 5), "burst", None, 1.0, 0)
    first_cycle = [r.prompt for r in workload.requests[: len(pool)]]
    assert sorted(first_cycle) == sorted(p.prompt for p in pool)


def test_length_scale_keeps_the_order_of_lengths_and_at_least_one_token():
    lengths = [0, 1, 3, 10, 11, 250, 1830]
    scaled = [scale_length(n, 0.1) for n in lengths]
    assert scaled == sorted(scaled) and min(scaled) == 1
    assert scale_length(1830, 1.0) == 1830
    with pytest.raises(ValueError):
        scale_length(10, 0)


def test_workload_requests_carry_scaled_max_tokens_and_true_lengths():
    pool = [PoolPrompt("a", 100), PoolPrompt("b", 7)]
    workload = build_workload(pool, np.array([0.5, 0.0]), "poisson", 1.0, 0.25, 0)
    assert [r.arrival_s for r in workload.requests] == [0.0, 0.5]
    assert {(r.true_tokens, r.output_tokens) for r in workload.requests} == {(100, 25), (7, 2)}


def test_poisson_arrivals_have_the_asked_rate_and_a_burst_arrives_at_once():
    times = poisson_arrivals(4000, 5.0, seed=1)
    assert times[0] == 0 and np.all(np.diff(times) >= 0)
    assert (len(times) - 1) / times[-1] == pytest.approx(5.0, rel=0.05)
    assert not burst_arrivals(7).any()


@pytest.mark.parametrize("name", sorted(TRACES))
def test_trace_scaling_preserves_the_order_of_arrivals_and_hits_the_rate(name):
    times = load_trace(name)
    assert times[0] == 0 and np.all(np.diff(times) >= 0)
    scaled = scale_trace(times, 500, rate=2.5)
    assert np.all(np.diff(scaled) >= 0)
    # Same order and same relative gaps: scaling is one positive factor on the clock.
    gaps, scaled_gaps = np.diff(times[:500]), np.diff(scaled)
    assert np.allclose(scaled_gaps, gaps * (scaled_gaps.sum() / gaps.sum()))
    assert 499 / scaled[-1] == pytest.approx(2.5)


def test_trace_scaling_rejects_impossible_windows():
    with pytest.raises(ValueError):
        scale_trace(np.array([0.0, 1.0]), 3, 1.0)
    with pytest.raises(ValueError):
        scale_trace(np.zeros(5), 5, 1.0)


def test_plan_scales_loads_by_capacity_and_sends_the_same_prompts_at_every_rate(pool):
    plan = ArrivalPlan(requests=40, burst=10, loads=(0.9, 0.5), length_scale=0.5, seed=2)
    workloads = plan.rate_workloads(pool, capacity_rps=4.0)
    assert [(w.rate, load) for w, load in workloads] == [(2.0, 0.5), (3.6, 0.9)]
    assert [r.prompt for r in workloads[0][0].requests] == [r.prompt for r in workloads[1][0].requests]
    assert plan.burst_workload(pool).arrival == "burst" and len(plan.burst_workload(pool).requests) == 10


def test_plan_with_a_trace_uses_its_arrival_pattern(pool):
    plan = ArrivalPlan(requests=30, burst=0, rates=(3.0,), trace="azure-conv", duration_s=20.0)
    (workload, load), = plan.rate_workloads(pool, None, load_trace("azure-conv"))
    assert workload.arrival == "trace" and load is None and len(workload.requests) == 60
    assert workload.requests[-1].arrival_s == pytest.approx(59 / 3.0)


def test_plan_without_a_burst_needs_absolute_rates():
    with pytest.raises(ValueError, match="absolute rates"):
        ArrivalPlan(burst=0)


def test_length_hints_follow_the_scores_order_on_the_pools_length_scale():
    pool = [PoolPrompt("a", 300), PoolPrompt("b", 10), PoolPrompt("c", 50)]
    hints = length_hints(pool, [0.1, 2.0, -1.0])
    assert hints == {"c": 10, "a": 50, "b": 300}
