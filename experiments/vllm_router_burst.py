"""PARS behind vllm-router: bursts of held-out prompts through vllm-router in front of two `pars serve` replicas.

For each serving policy (fcfs, pars, oracle) two replicas of `pars serve MODEL --policy P` start, then for each
router policy (round_robin, power_of_two) a vllm-router starts in front of them and sends `--repeats` bursts of
`--requests` streamed chat requests (the test split of the checkpoint's prompts, true gpt-3.5-turbo-1106 lengths
scaled by --length-scale, `ignore_eos`, `vllm_xargs.pars_true_length` for the oracle). Reported per (policy,
router policy): mean and P90 end-to-end latency, mean TTFT, Spearman(TTFT, true length) over the burst, and
each replica's share; medians of the repeats with their range, mean latency over FCFS's with the same router.

    .venv/bin/python experiments/vllm_router_burst.py --predictor artifacts/predictor --model artifacts/tiny-model \
        --out results/route/vllm_router_2026-12-06

Client-side clocks; one client, no other job on the machine (the load average is recorded before and after).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from contextlib import ExitStack
from importlib import metadata
from pathlib import Path

import httpx
import numpy as np

from pars.bench.http import (ServerSettings, ServerSetup, chat_body, check_responses, free_port, http_client,
                             metric_value, running_process, send_burst, server_environment, timings)
from pars.bench.latency import summarise
from pars.bench.serving import split_of, workload_pool
from pars.bench.workload import ArrivalPlan
from pars.metrics import spearman
from pars.scheduling.request_fields import TRUE_LENGTH_KEY

ROUTER = Path(sys.executable).with_name("vllm-router")
POLICIES = ("fcfs", "pars", "oracle")
ROUTER_POLICIES = ("round_robin", "power_of_two")


def served(url: str) -> float:
    return metric_value(httpx.get(f"{url}/metrics", timeout=30).text, "vllm:request_success_total")


def run_bursts(router_url: str, replicas: list[str], bodies: list[dict], lengths: np.ndarray, repeats: int,
               tag: str) -> list[dict]:
    rows = []
    for repeat in range(repeats):
        before = [served(url) for url in replicas]

        async def burst() -> list:
            async with http_client(router_url, len(bodies) + 8) as client:
                return await send_burst(client, bodies)

        responses = asyncio.run(burst())
        check_responses(responses, [b["max_tokens"] for b in bodies], f"{tag} repeat {repeat}")
        summary = summarise(timings(responses))
        ttfts = np.array([r.first_chunk_s - r.sent_s for r in responses])
        shares = [after - was for after, was in zip((served(url) for url in replicas), before)]
        rows.append({"repeat": repeat, "mean_e2e_s": summary.e2e.mean, "p90_e2e_s": summary.e2e.p90,
                     "mean_ttft_s": summary.ttft.mean, "spearman_ttft_length": spearman(ttfts, lengths),
                     "replica_shares": shares})
        print(f"{tag} repeat {repeat}: mean e2e {summary.e2e.mean:.2f} s, P90 {summary.e2e.p90:.2f} s, "
              f"rho(TTFT, length) {rows[-1]['spearman_ttft_length']:.2f}, shares {shares}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictor", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--length-scale", type=float, default=0.5)
    parser.add_argument("--max-num-seqs", type=int, default=4)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    pool, target, _ = workload_pool(None, None, split_of(Path(args.predictor)))
    burst = ArrivalPlan(burst=args.requests, length_scale=args.length_scale, seed=0).burst_workload(pool)
    lengths = np.array([r.output_tokens for r in burst.requests])
    bodies = [{**chat_body(args.model, r.prompt, r.output_tokens), "vllm_xargs": {TRUE_LENGTH_KEY: r.output_tokens}}
              for r in burst.requests]
    record: dict = {"settings": {**vars(args), "out": str(args.out), "target_model": target,
                                 "router": f"vllm-router {metadata.version('vllm-router')}"},
                    "loadavg_before": os.getloadavg(), "runs": []}
    for policy in POLICIES:
        with ExitStack() as stack:
            replicas = []
            for i in range(2):
                settings = ServerSettings(args.model, args.predictor if policy == "pars" else None, port=free_port(),
                                          max_num_seqs=args.max_num_seqs)
                setup = ServerSetup(policy, policy, "pars", policy)
                stack.enter_context(running_process(settings.command(setup), settings.environment(),
                                                    settings.base_url, args.out / f"{policy}-replica{i}.log"))
                replicas.append(settings.base_url)
            for router_policy in ROUTER_POLICIES:
                port = free_port()
                router_url = f"http://127.0.0.1:{port}"
                command = [str(ROUTER), "--host", "127.0.0.1", "--port", str(port), "--worker-urls", *replicas,
                           "--policy", router_policy, "--prometheus-port", str(free_port())]
                with running_process(command, server_environment(), router_url,
                                     args.out / f"{policy}-{router_policy}-router.log", start_timeout_s=120):
                    warm = [chat_body(args.model, f"Warm-up {i}: say something.", 8) for i in range(8)]
                    run_bursts(router_url, replicas, warm, np.arange(8), 1, f"{policy}/{router_policy} warm-up")
                    rows = run_bursts(router_url, replicas, bodies, lengths, args.repeats, f"{policy}/{router_policy}")
                record["runs"] += [{"policy": policy, "router_policy": router_policy, **row} for row in rows]
    record["loadavg_after"] = os.getloadavg()
    (args.out / "runs.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / "summary.md").write_text(summary_table(record["runs"]) + "\n")
    print(summary_table(record["runs"]))


def summary_table(runs: list[dict]) -> str:
    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

    lines = ["| policy | router policy | mean e2e s | / FCFS | P90 e2e s | mean TTFT s | rho(TTFT, length) | replica shares |",
             "|---|---|---|---|---|---|---|---|"]
    for router_policy in ROUTER_POLICIES:
        fcfs = {r["repeat"]: r["mean_e2e_s"] for r in runs if r["policy"] == "fcfs" and r["router_policy"] == router_policy}
        for policy in POLICIES:
            rows = [r for r in runs if r["policy"] == policy and r["router_policy"] == router_policy]
            ratios = [r["mean_e2e_s"] / fcfs[r["repeat"]] for r in rows]
            shares = " ".join("/".join(f"{s:.0f}" for s in r["replica_shares"]) for r in rows)
            lines.append(f"| {policy} | {router_policy} | {cell([r['mean_e2e_s'] for r in rows])} | {cell(ratios)} | "
                         f"{cell([r['p90_e2e_s'] for r in rows])} | {cell([r['mean_ttft_s'] for r in rows])} | "
                         f"{cell([r['spearman_ttft_length'] for r in rows])} | {shares} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
