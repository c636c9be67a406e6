"""What `pars bench sim` runs (besides --validate): a replay of policies over loads or a whole trace, the
starvation-bound study, the ranker-quality study, or the million-request scale check; outputs via sim_report."""

from __future__ import annotations

import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from pars.bench.serving import split_of, workload_pool
from pars.bench.sim_report import write_replay, write_study
from pars.bench.sim_study import (PROFILE_ENGINES, SimArrivals, SimSetup, bound_study, capacity_rps, replay,
                                  scale_check, sim_workloads, tau_study)
from pars.bench.sim_workload import pool_sizes
from pars.bench.traces import load_trace
from pars.scheduling import AgingRule, SchedulerSettings
from pars.sim import EngineConfig, StepProfile

STUDIES = ("replay", "bound", "quality", "scale")
QUALITY_WEIGHTS = (0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.97, 1.0)  # blend weights: tau from about 0.1 to 1


@dataclass(frozen=True)
class SimOptions:
    profile: str = "cpu-tiny-llama"
    study: str = "replay"
    policies: tuple[str, ...] = ("fcfs", "pars", "oracle")
    plan: SimArrivals = SimArrivals()
    replicas: int = 1
    balancer: str = "least-work"
    max_num_seqs: int | None = None  # None: the profile's engine (PROFILE_ENGINES)
    num_kv_blocks: int | None = None
    scoring_ms: float = 0.0
    predictor: Path | None = None
    target_model: str | None = None
    scale_requests: int = 1_000_000

    def engine(self) -> EngineConfig:
        name = Path(self.profile).stem
        base = PROFILE_ENGINES.get(name, EngineConfig(num_kv_blocks=65536, max_num_seqs=256))
        overrides = {k: v for k, v in (("max_num_seqs", self.max_num_seqs), ("num_kv_blocks", self.num_kv_blocks))
                     if v is not None}
        return replace(base, scoring_ms=self.scoring_ms, **overrides)


def bound_rules() -> dict[str, AgingRule]:
    """The starvation rules compared: off, aging only, the default, tighter and looser relative bounds, fixed waits."""
    default = SchedulerSettings()
    rate = default.aging_rate
    return {"no bound, no aging": AgingRule(), f"aging {rate}/s only": AgingRule(rate=rate),
            "default (2x FCFS wait, 60 s)": default.aging,
            "4x FCFS wait": AgingRule(rate=rate, max_wait_s=60.0, fcfs_wait_factor=4.0),
            "1.5x FCFS wait": AgingRule(rate=rate, max_wait_s=60.0, fcfs_wait_factor=1.5),
            "max wait 30 s": AgingRule(rate=rate, max_wait_s=30.0),
            "max wait 10 s": AgingRule(rate=rate, max_wait_s=10.0)}


def run_sim(options: SimOptions, out: Path, on_progress: Callable[[str], None] = lambda _: None) -> list[dict]:
    """Run `options.study`, write its files under `out`, return its rows."""
    if options.study not in STUDIES:
        raise ValueError(f"unknown study {options.study!r}; choose one of {', '.join(STUDIES)}")
    started, load_before = time.perf_counter(), os.getloadavg()
    profile = StepProfile.named(options.profile)
    setup = SimSetup(profile, options.engine(), replicas=options.replicas, balancer=options.balancer)
    plan = options.plan
    pool, target, prompts = workload_pool(None, options.target_model, split_of(options.predictor))
    policies = options.policies if options.study in ("replay", "bound") else ("fcfs", "oracle")
    sizes = {p: pool_sizes(p, pool, options.predictor, plan.length_scale) for p in policies}
    on_progress("sizes ready")
    capacity = capacity_rps(setup, pool, pool_sizes("fcfs", pool, None), plan.length_scale, plan.seed)
    settings = {"profile": profile.name, "profile_source": profile.source, "engine": asdict(setup.engine),
                "replicas": setup.replicas, "balancer": setup.balancer, "aging": str(setup.aging),
                "prompts": prompts, "target_model": target, "length_scale": plan.length_scale, "plan": asdict(plan),
                "capacity_rps": capacity, "study": options.study, "policies": list(policies),
                "command": shlex.join(["pars", *sys.argv[1:]]) if sys.argv else "pars bench sim"}

    def finished(**extra: object) -> dict:
        """The settings with the run's wall time and the load average around it (wall times need an idle machine)."""
        return {**settings, **extra, "wall_s": time.perf_counter() - started,
                "load_average_before": list(load_before), "load_average_after": list(os.getloadavg())}

    if options.study == "scale":
        rows = [scale_check(setup, pool, sizes["oracle"], n, plan.loads[0] * capacity, plan.length_scale, plan.seed)
                for n in sorted({min(100_000, options.scale_requests), options.scale_requests})]
        write_study(out, "scale", finished(), rows,
                    ["requests", "rate_rps", "wall_s", "peak_rss_mib", "mean_s", "p99_s", "steps", "leaps"],
                    x="requests", series="rate_rps", plot=False)
        return rows
    trace = load_trace(plan.trace) if plan.trace else None
    workloads = sim_workloads(pool, capacity, plan, trace)
    if options.study == "replay":
        result = replay(setup, workloads, pool, sizes, on_progress)
        return write_replay(out, finished(), result)
    if options.study == "bound":
        workload = next(w for w, load in workloads if load is not None and not math.isnan(load))
        rows = bound_study(setup, workload, pool, sizes, bound_rules())
        write_study(out, "bound", finished(workload=workload.label),
                    rows, ["rule", "policy", "mean_s", "p99_s", "mean_vs_fcfs", "p99_vs_fcfs"], x="rule", series="policy")
        return rows
    rows = tau_study(setup, [w for w in workloads if w[1] is not None], pool, sizes["fcfs"], sizes["oracle"],
                     QUALITY_WEIGHTS, plan.seed)
    write_study(out, "quality", finished(), rows,
                ["workload", "load", "weight", "tau", "mean_vs_fcfs", "p99_vs_fcfs", "captured_of_oracle"],
                x="tau", series="load")
    return rows
