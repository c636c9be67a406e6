"""Load check of the served path under predictor faults (a script, not a timed test).

Starts `pars serve`'s exact server (vLLM's OpenAI server, the PARS scheduler class, the tiny model) with one
change: the front-end middleware is `FaultyPredictorMiddleware` below, whose predictor call fails on
`--fail` of calls and sleeps past the front-end timeout on `--hang` of them (faults injected on purpose).
Sends `--requests` requests at `--concurrency` concurrent (half streamed chat, half plain completions) and
checks: none lost (every request answered 200 with exactly its tokens), none duplicated (unique response
ids, and vLLM counted exactly as many finished requests), and the front end's outcome counters match what
the engine's scheduler counted. Writes `OUT/load_check.json` and exits 1 when a check fails.

    .venv/bin/python experiments/load_check.py --out results/faults
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from pars.integrations.vllm.middleware import PARSScoringMiddleware

EXPERIMENTS_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = EXPERIMENTS_DIR.parent
MAX_TOKENS = 8
HANG_S = 1.5  # past the front-end timeout (1 s): every prompt of that batch falls back as "timeout"


class FaultyPredictorMiddleware(PARSScoringMiddleware):
    """The PARS middleware with an injected fault: its predictor raises on a share of calls and hangs on
    another (shares from PARS_LOAD_CHECK_FAIL / PARS_LOAD_CHECK_HANG; seeded, so runs repeat)."""

    def __init__(self, app: Any) -> None:  # noqa: ANN401 - an ASGI app
        super().__init__(app)
        fail, hang = float(os.environ["PARS_LOAD_CHECK_FAIL"]), float(os.environ["PARS_LOAD_CHECK_HANG"])
        real, rng = self.scorer.batcher.score, random.Random(0)

        def faulty(texts: list[str]) -> Any:  # noqa: ANN401
            roll = rng.random()
            if roll < fail:
                raise RuntimeError("injected predictor failure")
            if roll < fail + hang:
                time.sleep(HANG_S)
            return real(texts)

        self.scorer.batcher.score = faulty


def request_body(model: str, i: int) -> tuple[str, dict[str, Any]]:
    words = ("explain", "list", "write", "why", "short", "essay", "poem", "code", "plan", "history")
    text = f"Request {i}: " + " ".join(words[(i * k) % len(words)] for k in range(1, 2 + i % 9))
    common = {"model": model, "max_tokens": MAX_TOKENS, "ignore_eos": True, "temperature": 0.0}
    if i % 2:
        return "/v1/completions", {**common, "prompt": text}
    return "/v1/chat/completions", {**common, "messages": [{"role": "user", "content": text}], "stream": True,
                                    "stream_options": {"include_usage": True}}


async def send(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """One request: its status, response id and completion tokens (streamed or not)."""
    if not body.get("stream"):
        response = await client.post(path, json=body)
        data = response.json() if response.status_code == 200 else {}
        return {"status": response.status_code, "id": data.get("id"), "tokens": data.get("usage", {}).get("completion_tokens")}
    ids, tokens = set(), None
    async with client.stream("POST", path, json=body) as response:
        if response.status_code != 200:
            return {"status": response.status_code, "id": None, "tokens": None}
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line[len("data: "):])
                ids.add(chunk.get("id"))
                tokens = (chunk.get("usage") or {}).get("completion_tokens", tokens)
    return {"status": 200, "id": ids.pop() if len(ids) == 1 else None, "tokens": tokens}


async def drive(base_url: str, model: str, requests: int, concurrency: int) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(600.0, connect=30.0),
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one(i: int) -> dict[str, Any]:
            async with gate:
                return await send(client, *request_body(model, i))

        return list(await asyncio.gather(*(one(i) for i in range(requests))))


def counters(metrics_text: str) -> dict[str, dict[str, float]]:
    """Front-end outcomes, scheduler outcomes and vLLM's finished-request count from /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict[str, float]] = {"front_end": {}, "scheduler": {}, "vllm_finished": {}}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "pars_frontend_requests_total":
                out["front_end"][sample.labels["outcome"]] = out["front_end"].get(sample.labels["outcome"], 0) + sample.value
            elif sample.name == "pars_scheduler_requests_total":
                out["scheduler"][sample.labels["outcome"]] = out["scheduler"].get(sample.labels["outcome"], 0) + sample.value
            elif sample.name == "vllm:request_success_total":
                reason = sample.labels.get("finished_reason", "all")
                out["vllm_finished"][reason] = out["vllm_finished"].get(reason, 0) + sample.value
    return out


def checks(results: list[dict[str, Any]], seen: dict[str, dict[str, float]], requests: int) -> dict[str, bool]:
    front, sched = seen["front_end"], seen["scheduler"]
    engine_view = {("scored" if k == "sized" else k.removeprefix("front_end_")): v for k, v in sched.items()}
    return {
        "every request answered 200 with its tokens": all(r["status"] == 200 and r["tokens"] == MAX_TOKENS
                                                          for r in results),
        "no duplicated response id": len({r["id"] for r in results if r["id"]}) == requests,
        "vLLM finished exactly that many requests": sum(seen["vllm_finished"].values()) == requests,
        "front end saw every request once": sum(front.values()) == requests,
        "scheduler counted the same outcomes": engine_view == front,
        "faults were injected": front.get("predictor_error", 0) > 0 and front.get("timeout", 0) > 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--fail", type=float, default=0.2, help="share of predictor calls that raise")
    parser.add_argument("--hang", type=float, default=0.1, help=f"share that sleep {HANG_S} s (past the timeout)")
    parser.add_argument("--predictor", default=str(PROJECT_ROOT / "artifacts" / "predictor"))
    parser.add_argument("--model", default=str(PROJECT_ROOT / "artifacts" / "tiny-model"))
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "results" / "faults")
    args = parser.parse_args()

    from pars.bench.http import free_port, running_process, server_environment
    from pars.integrations.vllm.metrics import MULTIPROC_ENV, reset_metrics_dir
    from pars.integrations.vllm.serve import MIDDLEWARE, serve_argv

    port = free_port()
    argv, env = serve_argv(args.model, "pars", args.predictor, port=port, max_num_seqs=8,
                           extra_args=["--max-model-len", "512", "--enforce-eager"])
    argv[argv.index(MIDDLEWARE)] = f"{Path(__file__).stem}.FaultyPredictorMiddleware"
    server_env = server_environment({**env, "PYTHONPATH": os.pathsep.join([str(EXPERIMENTS_DIR), os.environ.get("PYTHONPATH", "")]),
                                     "PARS_LOAD_CHECK_FAIL": str(args.fail), "PARS_LOAD_CHECK_HANG": str(args.hang)})
    reset_metrics_dir(Path(env[MULTIPROC_ENV]))  # what `pars serve` does before it starts the server
    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    url = f"http://127.0.0.1:{port}"
    with running_process(argv, server_env, url, args.out / "load_check_server.log"):
        started = time.monotonic()
        results = asyncio.run(drive(url, args.model, args.requests, args.concurrency))
        seconds = time.monotonic() - started
        time.sleep(1.0)  # the engine core flushes its last counters
        seen = counters(httpx.get(f"{url}/metrics").text)
    verdicts = checks(results, seen, args.requests)
    report = {"requests": args.requests, "concurrency": args.concurrency, "fail": args.fail, "hang": args.hang,
              "hang_s": HANG_S, "seconds": round(seconds, 1), "load_average_before": load_before,
              "load_average_after": os.getloadavg(), "counters": seen,
              "checks": verdicts}
    (args.out / "load_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
