"""The simulator's studies on hand-made pools (pure: no engine), and `pars bench sim` on the bundled data."""

import json
import math

import numpy as np
import pytest

from pars.bench.ranking import PARS_RECIPE, RunSpec, load_bench_data
from pars.bench.sim_study import SimArrivals, SimSetup, bound_study, capacity_rps, replay, sim_workloads, tau_study
from pars.bench.sim_workload import blended_sizes, pool_sizes, prompt_tokens, synthetic_requests
from pars.bench.workload import ArrivalPlan, PoolPrompt
from pars.paths import PROJECT_ROOT
from pars.scheduling import AgingRule
from pars.sim import EngineConfig, StepProfile, oracle_size

PROFILE = StepProfile("hand", "test", base_s=0.01, per_prefill_token_s=1e-5, per_decode_seq_s=1e-3, per_kv_token_s=0.0)
POOL = [PoolPrompt(f"prompt number {i} " + "x" * (4 * i), true_tokens=t)
        for i, t in enumerate([5, 200, 12, 80, 3, 150, 40, 9, 60, 25])]
SETUP = SimSetup(PROFILE, EngineConfig(num_kv_blocks=10_000, max_num_seqs=2), AgingRule())


def sizes():
    return {policy: pool_sizes(policy, POOL, None) for policy in ("fcfs", "oracle")}


def test_a_ranking_benchmark_policy_reads_its_main_comparison_run_not_another_run_of_the_same_loss():
    """results/ranking/runs holds a dozen seed-0 margin runs (ablations, cross-model); the simulator must take the
    main comparison's (pars train's recipe), whose scores are those of its saved file."""
    runs = PROJECT_ROOT / "results" / "ranking" / "runs"
    prompts = load_bench_data().test_prompts[:8]
    pool = [PoolPrompt(prompt, true_tokens=10) for prompt in prompts]
    main = json.loads((runs / f"{PARS_RECIPE.key}.json").read_text())["scores"][:8]
    ablation = json.loads((runs / f"{RunSpec(threshold=0.0).key}.json").read_text())["scores"][:8]
    sizes = pool_sizes("margin", pool, None)
    assert sizes.tolist() == main and sizes.tolist() != ablation


def test_pool_sizes_follow_the_real_schedulers_keys_and_unknown_policies_are_refused():
    assert np.all(pool_sizes("fcfs", POOL, None) == pool_sizes("fcfs", POOL, None)[0])
    assert pool_sizes("oracle", POOL, None).tolist() == [oracle_size(p.true_tokens) for p in POOL]
    assert prompt_tokens("abcdefgh") == 2 and prompt_tokens("") == 1
    with pytest.raises(ValueError, match="unknown policy"):
        pool_sizes("sjf", POOL, None)
    with pytest.raises(ValueError, match="needs a predictor"):
        pool_sizes("pars", POOL, None)


def test_blended_sizes_get_better_with_their_weight_and_reach_the_true_order():
    true = np.random.default_rng(1).integers(1, 2000, 500)
    taus = [blended_sizes(true, w, seed=0)[1] for w in (0.0, 0.5, 0.9, 1.0)]
    assert taus == sorted(taus) and abs(taus[0]) < 0.1 and taus[-1] > 0.99


def test_synthetic_requests_stream_sorted_poisson_arrivals_across_chunks():
    requests = list(synthetic_requests(5000, rate=50.0, pool=POOL, sizes=np.arange(len(POOL)), length_scale=1.0,
                                       seed=3, chunk=700))
    arrivals = np.array([r.arrival_s for r in requests])
    assert [r.index for r in requests] == list(range(5000))
    assert np.all(np.diff(arrivals) >= 0)
    assert 5000 / arrivals[-1] == pytest.approx(50.0, rel=0.05)
    assert {r.output_tokens for r in requests} <= {p.true_tokens for p in POOL}


def test_in_a_burst_oracle_sjf_beats_fcfs_and_every_request_is_served():
    plan = SimArrivals(requests=40, burst=30, loads=(0.8,), seed=0)
    workloads = sim_workloads(POOL, capacity_rps(SETUP, POOL, sizes()["fcfs"], 1.0, 0), plan, None)
    result = replay(SETUP, workloads, POOL, sizes())
    by = {(r.policy, r.workload.arrival): r.summary for r in result.runs}
    assert by[("oracle", "burst")].e2e.mean < 0.8 * by[("fcfs", "burst")].e2e.mean
    assert all(r.summary.n == len(r.workload.requests) for r in result.runs)
    assert [w.arrival for w, _ in workloads] == ["burst", "poisson"]


def test_a_trace_without_loads_plays_as_recorded_and_with_loads_is_time_scaled_to_them():
    times = np.array([0.0, 0.5, 0.7, 2.0])
    recorded = sim_workloads(POOL, 10.0, SimArrivals(requests=4, burst=0, loads=(), trace="azure-conv"), times)
    assert len(recorded) == 1 and [r.arrival_s for r in recorded[0][0].requests] == times.tolist()
    assert recorded[0][1] == pytest.approx((3 / 2.0) / 10.0)
    scaled = sim_workloads(POOL, 10.0, SimArrivals(requests=4, burst=0, loads=(0.5,), trace="azure-conv"), times)
    assert len(scaled) == 1 and scaled[0][0].arrival == "trace" and scaled[0][1] == pytest.approx(0.5)


def test_two_replicas_serve_a_burst_faster_than_one():
    one = replay(SETUP, [(ArrivalPlan(burst=20).burst_workload(POOL), None)], POOL, {"fcfs": sizes()["fcfs"]})
    two = replay(SimSetup(PROFILE, SETUP.engine, replicas=2, balancer="round-robin"),
                 [(ArrivalPlan(burst=20).burst_workload(POOL), None)], POOL, {"fcfs": sizes()["fcfs"]})
    assert two.runs[0].summary.makespan_s < 0.7 * one.runs[0].summary.makespan_s


def test_the_bound_and_quality_studies_report_ratios_to_fcfs_on_the_same_requests():
    workload = ArrivalPlan(burst=30).burst_workload(POOL)
    rows = bound_study(SETUP, workload, POOL, sizes(), {"off": AgingRule(), "max wait 0.1 s": AgingRule(max_wait_s=0.1)})
    off = next(r for r in rows if r["rule"] == "off")
    tight = next(r for r in rows if r["rule"] == "max wait 0.1 s")
    assert off["mean_vs_fcfs"] < tight["mean_vs_fcfs"] <= 1.0 + 1e-9  # a tight bound gives back the SJF gain
    quality = tau_study(SETUP, [(workload, None)], POOL, sizes()["fcfs"], sizes()["oracle"], (0.0, 1.0), seed=0)
    assert quality[-1]["tau"] > quality[0]["tau"]
    assert quality[-1]["captured_of_oracle"] == pytest.approx(1.0, abs=0.05)
    assert not math.isnan(quality[0]["mean_vs_fcfs"])


def test_pars_bench_sim_writes_the_serving_benchmarks_summary_labelled_simulated(tmp_path):
    from typer.testing import CliRunner

    from pars.cli import app

    result = CliRunner().invoke(app, ["bench", "sim", "--policies", "fcfs,oracle", "--burst", "20", "--requests", "30",
                                      "--loads", "0.9", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["simulated"].startswith("SIMULATED")
    assert {(r["policy"], r["arrival"]) for r in summary["runs"]} == {
        ("fcfs", "burst"), ("oracle", "burst"), ("fcfs", "poisson"), ("oracle", "poisson")}
    assert "SIMULATED" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "latency_vs_rate.png").stat().st_size > 0
