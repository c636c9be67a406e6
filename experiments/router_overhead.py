"""Load check of `pars route`: what the router adds to each request, and that nothing is lost (a script).

Starts one stock vLLM server (tiny model, `--scheduling-policy priority`, `--max-num-seqs 8`) and `pars route`
in front of it, then sends `--requests` one-token completions at `--concurrency` concurrent, first straight
to vLLM, then through the router (same prompts, same order). Prints and writes `OUT/router_overhead.json`:
latency P50/P90/P99 of both, their difference, the router's own scoring time, and lost / duplicated counts.
On this 2-core machine the router, its scorer and vLLM share the cores, so the difference includes the
router's CPU competing with the engine.

    .venv/bin/python experiments/router_overhead.py --out results/route
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent


async def drive(base_url: str, model: str, requests: int, concurrency: int) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(600.0, connect=30.0),
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one(i: int) -> dict[str, Any]:
            body = {"model": model, "prompt": f"Request {i}: write one word about topic {i % 37}.", "max_tokens": 1,
                    "ignore_eos": True}
            async with gate:
                started = time.perf_counter()
                response = await client.post("/v1/completions", json=body)
                seconds = time.perf_counter() - started
            data = response.json() if response.status_code == 200 else {}
            return {"status": response.status_code, "id": data.get("id"), "seconds": seconds}

        return list(await asyncio.gather(*(one(i) for i in range(requests))))


def summary(results: list[dict[str, Any]], requests: int) -> dict[str, Any]:
    ms = np.array([r["seconds"] for r in results if r["status"] == 200]) * 1000
    return {"ok": int(len(ms)), "lost": requests - int(len(ms)),
            "duplicated_ids": len([r for r in results if r["id"]]) - len({r["id"] for r in results if r["id"]}),
            **{f"p{q}_ms": round(float(np.percentile(ms, q)), 1) for q in (50, 90, 99)}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--predictor", default=str(PROJECT_ROOT / "artifacts" / "predictor"))
    parser.add_argument("--model", default=str(PROJECT_ROOT / "artifacts" / "tiny-model"))
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "results" / "route")
    args = parser.parse_args()

    from pars.bench.http import free_port, metric_value, running_process, server_environment

    env = server_environment()
    args.out.mkdir(parents=True, exist_ok=True)
    vllm_port, router_port = free_port(), free_port()
    vllm_url, router_url = f"http://127.0.0.1:{vllm_port}", f"http://127.0.0.1:{router_port}"
    upstream = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", args.model, "--port",
                str(vllm_port), "--scheduling-policy", "priority", "--max-num-seqs", "8", "--max-model-len", "512",
                "--enforce-eager"]
    router = [sys.executable, "-m", "pars.cli", "route", "--upstream", vllm_url, "--predictor", args.predictor,
              "--port", str(router_port)]
    load_before = os.getloadavg()
    with running_process(upstream, env, vllm_url, args.out / "vllm.log"), \
            running_process(router, env, router_url, args.out / "router.log", start_timeout_s=120):
        asyncio.run(drive(vllm_url, args.model, 100, args.concurrency))  # warm-up, not measured
        asyncio.run(drive(router_url, args.model, 100, args.concurrency))
        direct = summary(asyncio.run(drive(vllm_url, args.model, args.requests, args.concurrency)), args.requests)
        routed = summary(asyncio.run(drive(router_url, args.model, args.requests, args.concurrency)), args.requests)
        metrics = httpx.get(f"{router_url}/metrics").text
    scoring_s = metric_value(metrics, "pars_router_scoring_seconds_sum")
    scored = metric_value(metrics, "pars_router_scoring_seconds_count")
    report = {"requests": args.requests, "concurrency": args.concurrency, "direct": direct, "routed": routed,
              "added_p50_ms": round(routed["p50_ms"] - direct["p50_ms"], 1),
              "added_p99_ms": round(routed["p99_ms"] - direct["p99_ms"], 1),
              "router_scoring_mean_ms": round(1000 * scoring_s / scored, 2) if scored else None,
              "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "machine": "2-core VM, no GPU; vLLM tiny model, max-num-seqs 8, one-token completions"}
    (args.out / "router_overhead.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if direct["lost"] == routed["lost"] == routed["duplicated_ids"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
