"""PARS vs FCFS at scale, simulated (labelled so): 64 GPU replicas behind a round-robin balancer, an hour of the
Azure conversation trace's shape at 0.9 of FCFS capacity, and what the scorer costs at that rate.

The Azure conversation hour has 19,366 arrivals (5.4 req/s); 64 H100 replicas serve about 3,000 req/s. So the
hour's shape is kept minute by minute (each minute's share of the hour's arrivals sets that minute's rate, Poisson
within the minute) and scaled so the hour's mean rate is 0.9 of the simulated FCFS capacity: about 9.7 million
arrivals, whose busiest minutes run above capacity, as the trace's do. Round-robin hands replica k every 64th
arrival, so each replica's stream is independent of the others'; `--simulate-replicas` of them are simulated (the
rest are statistically the same) and their requests pooled.

    .venv/bin/python experiments/scale_sim.py --predictor artifacts/predictor --out results/sim/scale_64_2026-12-07

Scoring cost per request comes from `pars bench overhead` (docs/scoring.md, one thread, this 2-core VM); the
student scores in the front end (API server), the teacher on a worker thread, so neither is on an engine's path:
the table gives the CPU the front ends need for it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from pars.bench.serving import split_of, workload_pool
from pars.bench.sim_study import PROFILE_ENGINES, SimSetup, capacity_rps
from pars.bench.sim_workload import pool_sizes, prompt_tokens
from pars.bench.traces import load_trace
from pars.predictor.loading import STUDENT_DIR
from pars.sim import SimRequest, StepProfile, simulate

PROFILE = "h100-llama-3.1-8b"
MINUTE_S = 60.0


def hour_arrivals(trace: np.ndarray, mean_rate: float, rng: np.random.Generator) -> np.ndarray:
    """Arrival times over the trace's span: piecewise-constant Poisson, each minute at the trace's own share."""
    minutes = max(1, int(np.ceil(trace[-1] / MINUTE_S)))
    counts, _ = np.histogram(trace, bins=minutes, range=(0.0, minutes * MINUTE_S))
    rates = mean_rate * counts / counts.mean()
    per_minute = rng.poisson(rates * MINUTE_S)
    starts = np.repeat(np.arange(minutes) * MINUTE_S, per_minute)
    return np.sort(starts + rng.uniform(0.0, MINUTE_S, per_minute.sum()))


def replica_requests(arrivals: np.ndarray, picks: np.ndarray, tokens_in: np.ndarray, tokens_out: np.ndarray,
                     sizes: np.ndarray):
    """One replica's stream, the prompts' sizes under one policy."""
    for i, (arrival, k) in enumerate(zip(arrivals.tolist(), picks.tolist())):
        yield SimRequest(i, arrival, int(tokens_in[k]), int(tokens_out[k]), float(sizes[k]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictor", type=Path, required=True, help="the teacher; its student in DIR/student")
    parser.add_argument("--replicas", type=int, default=64)
    parser.add_argument("--simulate-replicas", type=int, default=8)
    parser.add_argument("--load", type=float, default=0.9)
    parser.add_argument("--max-num-seqs", type=int, default=256)
    parser.add_argument("--teacher-ms", type=float, default=8.2, help="teacher bf16, batch 32 (docs/scoring.md)")
    parser.add_argument("--teacher-ms-batch1", type=float, default=13.1)
    parser.add_argument("--student-ms", type=float, default=0.068, help="student, batch 32 (docs/scoring.md)")
    parser.add_argument("--student-ms-batch1", type=float, default=0.094)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started, load_before = time.perf_counter(), os.getloadavg()

    profile = StepProfile.named(PROFILE)
    engine = replace(PROFILE_ENGINES[PROFILE], max_num_seqs=args.max_num_seqs)
    pool, target, prompts = workload_pool(None, None, split_of(args.predictor))
    sizes = {"fcfs": pool_sizes("fcfs", pool, None), "oracle": pool_sizes("oracle", pool, None),
             "pars-student": pool_sizes("pars", pool, args.predictor / STUDENT_DIR),
             "pars-teacher": pool_sizes("pars", pool, args.predictor)}
    setup = SimSetup(profile, engine)
    aging = setup.aging  # the real scheduler's default, as every sim study uses
    per_replica_capacity = capacity_rps(setup, pool, sizes["fcfs"], 1.0, args.seed)
    capacity = per_replica_capacity * args.replicas
    rng = np.random.default_rng(args.seed)
    trace = load_trace("azure-conv")
    arrivals = hour_arrivals(trace, args.load * capacity, rng)
    picks = rng.integers(0, len(pool), len(arrivals))
    tokens_in = np.array([prompt_tokens(p.prompt) for p in pool])
    tokens_out = np.array([p.true_tokens for p in pool])
    minute_counts, _ = np.histogram(arrivals, bins=int(np.ceil(arrivals[-1] / MINUTE_S)))
    print(f"{len(arrivals):,} arrivals over {arrivals[-1]:.0f} s at {args.load} x {capacity:.0f} req/s; "
          f"busiest minute {minute_counts.max() / MINUTE_S / capacity:.2f} of capacity", flush=True)

    e2e: dict[str, list[np.ndarray]] = {policy: [] for policy in sizes}
    ttft: dict[str, list[np.ndarray]] = {policy: [] for policy in sizes}
    for k in range(args.simulate_replicas):
        mine = slice(k, None, args.replicas)
        for policy, policy_sizes in sizes.items():
            result = simulate(replica_requests(arrivals[mine], picks[mine], tokens_in, tokens_out, policy_sizes),
                              profile, engine, aging)
            e2e[policy].append(result.finish_s - result.arrival_s)
            ttft[policy].append(result.first_token_s - result.arrival_s)
        print(f"replica {k + 1}/{args.simulate_replicas} done ({time.perf_counter() - started:.0f} s)", flush=True)

    rows = latency_rows(e2e, ttft)
    rate = args.load * capacity
    costs = [{"scorer": name, "ms_batch1": b1, "ms_batch32": b32, "cores_per_1000_rps": (b32, b1),
              "cores_at_rate": (b32 * rate / 1000.0, b1 * rate / 1000.0)}
             for name, b1, b32 in (("student", args.student_ms_batch1, args.student_ms),
                                   ("teacher", args.teacher_ms_batch1, args.teacher_ms))]
    settings = {**vars(args), "predictor": str(args.predictor), "out": str(args.out), "profile": PROFILE,
                "engine": str(engine), "target_model": target, "prompts": prompts, "pool": len(pool),
                "per_replica_capacity_rps": per_replica_capacity, "capacity_rps": capacity, "rate_rps": rate,
                "arrivals": len(arrivals), "simulated_requests": sum(len(x) for x in e2e["fcfs"]),
                "busiest_minute_load": float(minute_counts.max() / MINUTE_S / capacity),
                "quietest_minute_load": float(minute_counts.min() / MINUTE_S / capacity),
                "wall_s": time.perf_counter() - started, "load_average_before": load_before,
                "load_average_after": os.getloadavg()}
    (args.out / "runs.json").write_text(json.dumps({"settings": settings, "rows": rows, "costs": costs},
                                                   indent=2) + "\n")
    table = tables(rows, costs, rate)
    (args.out / "summary.md").write_text(table + "\n")
    print(table)


def latency_rows(e2e: dict[str, list[np.ndarray]], ttft: dict[str, list[np.ndarray]]) -> list[dict]:
    """Pooled latency per policy, over FCFS's; the spread of the per-replica mean ratio shows the pooling is fair."""
    fcfs_all = np.concatenate(e2e["fcfs"])
    rows = []
    for policy in e2e:
        pooled = np.concatenate(e2e[policy])
        per_replica = [a.mean() / f.mean() for a, f in zip(e2e[policy], e2e["fcfs"])]
        rows.append({"policy": policy, "requests": int(len(pooled)), "mean_s": float(pooled.mean()),
                     "p50_s": float(np.percentile(pooled, 50)), "p90_s": float(np.percentile(pooled, 90)),
                     "p99_s": float(np.percentile(pooled, 99)),
                     "ttft_mean_s": float(np.concatenate(ttft[policy]).mean()),
                     "mean_vs_fcfs": float(pooled.mean() / fcfs_all.mean()),
                     "p99_vs_fcfs": float(np.percentile(pooled, 99) / np.percentile(fcfs_all, 99)),
                     "replica_mean_vs_fcfs_min": float(min(per_replica)),
                     "replica_mean_vs_fcfs_max": float(max(per_replica))})
    return rows


def tables(rows: list[dict], costs: list[dict], rate: float) -> str:
    lines = ["| policy | mean s | P50 s | P90 s | P99 s | mean TTFT s | mean / FCFS (replicas' range) | P99 / FCFS |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['policy']} | {r['mean_s']:.2f} | {r['p50_s']:.2f} | {r['p90_s']:.2f} | {r['p99_s']:.2f} | "
                     f"{r['ttft_mean_s']:.2f} | {r['mean_vs_fcfs']:.3f} ({r['replica_mean_vs_fcfs_min']:.3f}-"
                     f"{r['replica_mean_vs_fcfs_max']:.3f}) | {r['p99_vs_fcfs']:.3f} |")
    lines += ["", f"| scorer | ms a request (batch 32 / batch 1) | cores per 1,000 req/s | "
                  f"cores at {rate:,.0f} req/s |",
              "|---|---|---|---|"]
    for c in costs:
        lines.append(f"| {c['scorer']} | {c['ms_batch32']:.3g} / {c['ms_batch1']:.3g} | "
                     f"{c['cores_per_1000_rps'][0]:.2g}-{c['cores_per_1000_rps'][1]:.2g} | "
                     f"{c['cores_at_rate'][0]:.3g}-{c['cores_at_rate'][1]:.3g} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
