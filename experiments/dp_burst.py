"""PARS inside vLLM data parallelism: bursts of held-out prompts into one `pars serve --data-parallel-size 2`.

For each serving policy (fcfs; pars with the student, pars-teacher with the fine-tuned encoder, by `--scorer`;
oracle) one `pars serve MODEL --policy P --data-parallel-size 2` starts (one API server, two engine cores), then `--repeats` bursts of `--requests` streamed chat requests go in two ways:
- `vllm-lb`: as a client sends them; vLLM's own balancer picks the engine core;
- `pinned`: request i pinned to rank i % 2 with vLLM's `X-data-parallel-rank` header, so each rank's order can be
  read from the client: Spearman(TTFT, true length) per rank.
Prompts: the test split of the checkpoint's prompts, true gpt-3.5-turbo-1106 lengths scaled by --length-scale,
`ignore_eos`, `vllm_xargs.pars_true_length` for the oracle. Medians of the repeats with their range; mean latency
over FCFS's in the same mode and repeat.

    .venv/bin/python experiments/dp_burst.py --predictor artifacts/predictor --model artifacts/tiny-model \
        --out results/route/dp_2026-12-07

Client-side clocks; one client, no other job on the machine (the load average is recorded before and after).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path

import httpx
import numpy as np

from pars.bench.http import (ServerSettings, ServerSetup, chat_body, check_responses, free_port, http_client,
                             metric_value, running_process, stream_chat, timings)
from pars.bench.latency import summarise
from pars.bench.serving import split_of, workload_pool
from pars.bench.workload import ArrivalPlan
from pars.metrics import spearman
from pars.scheduling.request_fields import TRUE_LENGTH_KEY

POLICIES = ("fcfs", "pars", "pars-teacher", "oracle")
SCORERS = {"pars": "student", "pars-teacher": "teacher"}  # `pars serve --scorer`
MODES = ("vllm-lb", "pinned")
RANKS = 2


def served_per_rank(url: str) -> list[float]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return [metric_value(text, "vllm:request_success_total", engine=str(rank)) for rank in range(RANKS)]


def burst(url: str, bodies: list[dict], pinned: bool) -> list:
    async def send() -> list:
        async with http_client(url, len(bodies) + 8) as client:
            started = time.monotonic()
            return list(await asyncio.gather(*(
                stream_chat(client, body, started, {"X-data-parallel-rank": str(i % RANKS)} if pinned else None)
                for i, body in enumerate(bodies))))

    return asyncio.run(send())


def run_bursts(url: str, bodies: list[dict], lengths: np.ndarray, repeats: int, mode: str, tag: str) -> list[dict]:
    rows = []
    for repeat in range(repeats):
        before = served_per_rank(url)
        responses = burst(url, bodies, mode == "pinned")
        check_responses(responses, [b["max_tokens"] for b in bodies], f"{tag} repeat {repeat}")
        time.sleep(1.0)  # the engine cores flush their counters
        shares = [after - was for after, was in zip(served_per_rank(url), before)]
        summary = summarise(timings(responses))
        ttfts = np.array([r.first_chunk_s - r.sent_s for r in responses])
        rank = np.arange(len(bodies)) % RANKS
        per_rank = [spearman(ttfts[rank == k], lengths[rank == k]) for k in range(RANKS)] if mode == "pinned" else []
        rows.append({"repeat": repeat, "mean_e2e_s": summary.e2e.mean, "p90_e2e_s": summary.e2e.p90,
                     "mean_ttft_s": summary.ttft.mean, "spearman_ttft_length": spearman(ttfts, lengths),
                     "spearman_per_rank": per_rank, "rank_shares": shares})
        print(f"{tag} repeat {repeat}: mean e2e {summary.e2e.mean:.2f} s, rho(TTFT, length) "
              f"{rows[-1]['spearman_ttft_length']:.2f}, per rank {[round(x, 2) for x in per_rank]}, shares {shares}",
              flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictor", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--length-scale", type=float, default=0.5)
    parser.add_argument("--max-num-seqs", type=int, default=4, help="per engine core")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    pool, target, _ = workload_pool(None, None, split_of(Path(args.predictor)))
    workload = ArrivalPlan(burst=args.requests, length_scale=args.length_scale, seed=0).burst_workload(pool)
    lengths = np.array([r.output_tokens for r in workload.requests])
    bodies = [{**chat_body(args.model, r.prompt, r.output_tokens), "vllm_xargs": {TRUE_LENGTH_KEY: r.output_tokens}}
              for r in workload.requests]
    record: dict = {"settings": {**vars(args), "out": str(args.out), "target_model": target,
                                 "data_parallel_size": RANKS}, "loadavg_before": os.getloadavg(), "runs": []}
    for policy in POLICIES:
        served = "pars" if policy in SCORERS else policy
        settings = ServerSettings(args.model, args.predictor if policy in SCORERS else None, port=free_port(),
                                  max_num_seqs=args.max_num_seqs)
        command = [*settings.command(ServerSetup(policy, served, "pars", policy)), "--data-parallel-size", str(RANKS)]
        if policy in SCORERS:
            command[command.index("--policy"):command.index("--policy")] = ["--scorer", SCORERS[policy]]
        with running_process(command, settings.environment(), settings.base_url, args.out / f"{policy}.log"):
            warm = [chat_body(args.model, f"Warm-up {i}: say something.", 8) for i in range(8)]
            run_bursts(settings.base_url, warm, np.arange(8), 1, "pinned", f"{policy} warm-up")
            for mode in MODES:
                rows = run_bursts(settings.base_url, bodies, lengths, args.repeats, mode, f"{policy}/{mode}")
                record["runs"] += [{"policy": policy, "mode": mode, **row} for row in rows]
    record["loadavg_after"] = os.getloadavg()
    (args.out / "runs.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / "summary.md").write_text(summary_table(record["runs"]) + "\n")
    print(summary_table(record["runs"]))


def summary_table(runs: list[dict]) -> str:
    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

    lines = ["| policy | mode | mean e2e s | / FCFS | P90 e2e s | mean TTFT s | rho(TTFT, length) | rho rank 0 | "
             "rho rank 1 | rank shares |", "|---|---|---|---|---|---|---|---|---|---|"]
    for mode in MODES:
        fcfs = {r["repeat"]: r["mean_e2e_s"] for r in runs if r["policy"] == "fcfs" and r["mode"] == mode}
        for policy in POLICIES:
            rows = [r for r in runs if r["policy"] == policy and r["mode"] == mode]
            per_rank = [cell([r["spearman_per_rank"][k] for r in rows]) if mode == "pinned" else "-"
                        for k in range(RANKS)]
            shares = " ".join("/".join(f"{s:.0f}" for s in r["rank_shares"]) for r in rows)
            lines.append(f"| {policy} | {mode} | {cell([r['mean_e2e_s'] for r in rows])} | "
                         f"{cell([r['mean_e2e_s'] / fcfs[r['repeat']] for r in rows])} | "
                         f"{cell([r['p90_e2e_s'] for r in rows])} | {cell([r['mean_ttft_s'] for r in rows])} | "
                         f"{cell([r['spearman_ttft_length'] for r in rows])} | {per_rank[0]} | {per_rank[1]} | "
                         f"{shares} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
