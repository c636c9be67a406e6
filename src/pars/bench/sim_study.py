"""`pars bench sim`: what-ifs in the simulator (pars.sim) on a step profile: policies across load or over a
whole arrival trace, replicas behind the router's balancer, the starvation bound's mean/tail trade-off, and
the latency a ranker of a given quality buys. Every number it prints is simulated.

Replays produce the serving benchmark's own `RunResult`s, so `pars bench sim` writes the same summary and
plots as `pars bench serve`. Ranked policies use the real scheduler's default aging and bound
(`SchedulerSettings`), FCFS the same queue with one size for all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from pars.bench.latency import summarise
from pars.bench.serving import BenchmarkResult, RunResult
from pars.bench.sim_workload import blended_sizes, sim_requests, synthetic_requests
from pars.bench.workload import ArrivalPlan, PoolPrompt, Workload, build_workload, burst_arrivals
from pars.scheduling import AgingRule, SchedulerSettings
from pars.scoring.rank import AnchoredRank
from pars.sim import EngineConfig, SimRequest, StepProfile, simulate
from pars.sim.balancing import predicted_tokens
from pars.sim.cluster import simulate_cluster

# Engine limits that go with each shipped profile: what the profiled engine ran with (this machine), or vLLM's
# defaults for that GPU (max_num_seqs 1024 and a 8,192-token budget on an H100 server; KV blocks for the memory
# an 80 GB H100 leaves after an 8B model's 16 GB of weights: about 400k tokens at 128 KiB a token).
UNSCORED = ("fcfs", "oracle")
PROFILE_ENGINES: dict[str, EngineConfig] = {
    "cpu-tiny-llama": EngineConfig(num_kv_blocks=65536, max_num_seqs=4, max_num_batched_tokens=4096),
    "h100-llama-3.1-8b": EngineConfig(num_kv_blocks=25000, max_num_seqs=1024, max_num_batched_tokens=8192),
}


@dataclass(frozen=True)
class SimArrivals:
    """What a study replays: a burst of `burst` (0: none), then `requests` arrivals at each load (a fraction
    of the simulated FCFS capacity), Poisson or the `trace` time-scaled; a trace without loads as recorded."""

    requests: int = 2000
    burst: int = 200
    loads: tuple[float, ...] = (0.5, 0.8, 1.0, 1.2, 1.5)
    trace: str | None = None
    length_scale: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class SimSetup:
    """What every policy of a study runs on: one replica, or `replicas` behind the router's `balancer`."""

    profile: StepProfile
    engine: EngineConfig
    aging: AgingRule = field(default_factory=lambda: SchedulerSettings().aging)
    replicas: int = 1
    balancer: str = "least-work"
    router_scoring_ms: float = 0.0

    def for_policy(self, policy: str) -> SimSetup:
        """FCFS and the oracle need no scorer: they pay no scoring time."""
        if policy in UNSCORED:
            return replace(self, engine=replace(self.engine, scoring_ms=0.0), router_scoring_ms=0.0)
        return self

    def run(self, requests: Sequence[SimRequest], sizes_of_pool: np.ndarray) -> list:
        """Per-request timings; with replicas, the router's predicted work comes from the size's rank, as
        `pars score-server` ranks a score: against quantiles (here the sorted pool sizes, there the checkpoint's)."""
        if self.replicas == 1:
            return simulate(requests, self.profile, self.engine, self.aging).timings()
        rank = AnchoredRank(np.sort(sizes_of_pool).tolist())

        def work_of(request: SimRequest) -> float:
            return predicted_tokens(rank.share_below(request.size))

        return simulate_cluster(requests, self.profile, self.engine, self.replicas, self.balancer, self.aging,
                                work_of, self.router_scoring_ms).result.timings()


def capacity_rps(setup: SimSetup, pool: Sequence[PoolPrompt], fcfs_sizes: np.ndarray, length_scale: float,
                 seed: int) -> float:
    """FCFS throughput of a burst long enough to keep every replica's batch full for a while."""
    n = max(200, 8 * setup.engine.max_num_seqs * setup.replicas)
    burst = build_workload(pool, burst_arrivals(n), "burst", None, length_scale, seed)
    fcfs = setup.for_policy("fcfs")
    return summarise(fcfs.run(sim_requests(burst, pool, fcfs_sizes), fcfs_sizes)).throughput_rps


def replay(setup: SimSetup, workloads: Sequence[tuple[Workload, float | None]], pool: Sequence[PoolPrompt],
           sizes: dict[str, np.ndarray], on_done: Callable[[str], None] = lambda _: None) -> BenchmarkResult:
    """Every policy on every workload (the same requests; only the sizes differ)."""
    result = BenchmarkResult()
    for workload, load in workloads:
        for policy, pool_sizes in sizes.items():
            timings = tuple(setup.for_policy(policy).run(sim_requests(workload, pool, pool_sizes), pool_sizes))
            result.runs.append(RunResult(policy, workload, load, timings, summarise(timings)))
            on_done(f"{policy}, {workload.label}")
    return result


def sim_workloads(pool: Sequence[PoolPrompt], capacity: float, plan: SimArrivals,
                  trace_times: np.ndarray | None) -> list[tuple[Workload, float | None]]:
    """The burst, then each load as Poisson arrivals (or the trace time-scaled to it); a trace without loads
    plays as recorded. Loads are fractions of `capacity` (the simulator's own FCFS capacity)."""
    workloads: list[tuple[Workload, float | None]] = []
    if plan.burst:
        workloads.append((build_workload(pool, burst_arrivals(plan.burst), "burst", None, plan.length_scale,
                                         plan.seed), None))
    if plan.trace and not plan.loads:
        times = np.asarray(trace_times)
        rate = (len(times) - 1) / float(times[-1]) if len(times) > 1 and times[-1] > 0 else math.nan
        recorded = build_workload(pool, times, "trace", rate, plan.length_scale, plan.seed, plan.trace)
        return workloads + [(recorded, rate / capacity)]
    if plan.loads:
        rates = ArrivalPlan(plan.requests, 0, (), tuple(load * capacity for load in plan.loads), trace=plan.trace,
                            length_scale=plan.length_scale, seed=plan.seed)
        workloads += rates.rate_workloads(pool, capacity, trace_times)
    return workloads


def bound_study(setup: SimSetup, workload: Workload, pool: Sequence[PoolPrompt], sizes: dict[str, np.ndarray],
                rules: dict[str, AgingRule]) -> list[dict]:
    """Mean and P99 of each ranked policy under each starvation rule, against FCFS on the same requests."""
    fcfs = summarise(setup.for_policy("fcfs").run(sim_requests(workload, pool, sizes["fcfs"]), sizes["fcfs"])).e2e
    rows = []
    for label, rule in rules.items():
        for policy in (p for p in sizes if p != "fcfs"):
            ruled = replace(setup.for_policy(policy), aging=rule)
            e2e = summarise(ruled.run(sim_requests(workload, pool, sizes[policy]), sizes[policy])).e2e
            rows.append({"rule": label, "policy": policy, "mean_s": e2e.mean, "p99_s": e2e.p99,
                         "mean_vs_fcfs": e2e.mean / fcfs.mean, "p99_vs_fcfs": e2e.p99 / fcfs.p99})
    return rows


def tau_study(setup: SimSetup, workloads: Sequence[tuple[Workload, float | None]], pool: Sequence[PoolPrompt],
              fcfs_sizes: np.ndarray, oracle_sizes: np.ndarray, weights: Sequence[float], seed: int) -> list[dict]:
    """Latency against ranker quality: sizes blended from the true lengths and noise, per workload."""
    true_tokens = np.array([p.true_tokens for p in pool])
    rows = []
    for workload, load in workloads:
        def mean_of(policy: str, pool_sizes: np.ndarray) -> tuple[float, float]:
            run = setup.for_policy(policy).run(sim_requests(workload, pool, pool_sizes), pool_sizes)
            e2e = summarise(run).e2e
            return e2e.mean, e2e.p99

        fcfs_mean, fcfs_p99 = mean_of("fcfs", fcfs_sizes)
        oracle_mean, _ = mean_of("oracle", oracle_sizes)
        for weight in weights:
            blended, tau = blended_sizes(true_tokens, weight, seed)
            mean, p99 = mean_of("blended", blended)
            gap = fcfs_mean - oracle_mean
            rows.append({"workload": workload.label, "load": load, "weight": weight, "tau": tau,
                         "mean_vs_fcfs": mean / fcfs_mean, "p99_vs_fcfs": p99 / fcfs_p99,
                         "captured_of_oracle": (fcfs_mean - mean) / gap if gap > 0 else math.nan})
    return rows


def scale_check(setup: SimSetup, pool: Sequence[PoolPrompt], pool_sizes: np.ndarray, n: int, rate: float,
                length_scale: float, seed: int) -> dict:
    """Simulate `n` synthetic requests streamed from a generator: wall time, peak memory, latency (arrays only,
    no per-request objects kept)."""
    import resource
    import time

    started = time.perf_counter()
    requests = synthetic_requests(n, rate, pool, pool_sizes, length_scale, seed)
    result = simulate(requests, setup.profile, setup.engine, setup.aging)
    e2e = result.finish_s - result.arrival_s
    return {"requests": n, "rate_rps": rate, "wall_s": time.perf_counter() - started,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "mean_s": float(e2e.mean()), "p99_s": float(np.percentile(e2e, 99)), "steps": result.counters.steps,
            "leaps": result.counters.leaps, "simulated_s": float(result.finish_s.max() - result.arrival_s.min())}
