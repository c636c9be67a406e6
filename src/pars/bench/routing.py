"""`pars bench route`: two stock vLLM replicas behind `pars route`, FCFS round-robin vs PARS priority with
each balancer, on the same held-out requests.

Both replicas (`vllm serve --scheduling-policy priority`) start once and serve every setup; each setup starts
its own router in front of them. FCFS is the router with `--no-score`: vLLM sees no priority and serves in
arrival order. Oracle is the same plain router with the client sending `priority` = the true length (the
ceiling of per-replica ordering). Requests are non-streamed completions of test-split prompts, `max_tokens`
= the target model's true length x the length scale with ignore_eos; latency is the client's, from send to
the whole answer. FCFS's burst throughput (the pair's capacity) sets the Poisson rates. A lost request or
one with the wrong token count fails the run.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from pars.bench.http import free_port, http_client, metric_value, running_process, server_environment
from pars.bench.latency import LatencySummary, RequestTiming, summarise
from pars.bench.serving import BenchmarkError, split_of, workload_pool
from pars.bench.workload import ArrivalPlan, PoolPrompt, Workload, WorkloadRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RouterSetup:
    name: str
    balancer: str
    score: bool  # the router scores and sets vLLM's priority
    oracle_priority: bool = False  # the client sends priority = the true length

    def router_args(self) -> list[str]:
        return ["--balancer", self.balancer, *([] if self.score else ["--no-score"])]


SETUPS: dict[str, RouterSetup] = {s.name: s for s in (
    RouterSetup("fcfs-round-robin", "round-robin", score=False),
    RouterSetup("pars-round-robin", "round-robin", score=True),
    RouterSetup("pars-least-requests", "least-requests", score=True),
    RouterSetup("pars-power-of-two", "power-of-two", score=True),
    RouterSetup("pars-least-work", "least-work", score=True),
    RouterSetup("oracle-round-robin", "round-robin", score=False, oracle_priority=True),
)}
BASELINE = "fcfs-round-robin"


@dataclass(frozen=True)
class ReplicaSettings:
    """The same for both replicas and every setup."""

    model: str
    predictor: str
    replicas: int = 2
    max_num_seqs: int = 4
    max_model_len: int = 4096
    kv_cache_gib: int = 1

    def replica_command(self, port: int) -> list[str]:
        return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model, "--port",
                str(port), "--scheduling-policy", "priority", "--max-num-seqs", str(self.max_num_seqs),
                "--max-model-len", str(self.max_model_len), "--enforce-eager"]

    def router_command(self, setup: RouterSetup, upstreams: Sequence[str], port: int) -> list[str]:
        return [sys.executable, "-m", "pars.cli", "route", "--upstream", ",".join(upstreams), "--predictor",
                self.predictor, "--port", str(port), *setup.router_args()]


@dataclass(frozen=True)
class Answer:
    """One request as the client saw it (seconds since the workload started)."""

    sent_s: float
    finish_s: float
    status: int
    completion_tokens: int | None
    replica: str | None
    priority: int | None


@dataclass(frozen=True)
class SetupRun:
    setup: str
    repeat: int
    workload: str
    load: float | None
    summary: LatencySummary
    answers: tuple[Answer, ...]
    scoring_ms: float  # the router's mean scoring time (NaN: it did not score)
    loadavg_before: tuple[float, float, float]
    loadavg_after: tuple[float, float, float]

    def per_replica(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for answer in self.answers:
            counts[answer.replica or "?"] = counts.get(answer.replica or "?", 0) + 1
        return counts


@dataclass
class RoutingResult:
    prompts: str
    target_model: str
    capacity_rps: float = math.nan
    runs: list[SetupRun] = field(default_factory=list)


def request_body(model: str, request: WorkloadRequest, oracle_priority: bool) -> dict:
    body = {"model": model, "prompt": request.prompt, "max_tokens": request.output_tokens, "ignore_eos": True,
            "temperature": 0.0}
    return {**body, "priority": request.output_tokens} if oracle_priority else body


async def replay(base_url: str, model: str, workload: Workload, oracle_priority: bool) -> list[Answer]:
    """Send each request at its arrival time (open loop); answers in the workload's order."""
    async with http_client(base_url, len(workload.requests) + 8) as client:
        started = time.monotonic()

        async def one(request: WorkloadRequest) -> Answer:
            await asyncio.sleep(max(0.0, request.arrival_s - (time.monotonic() - started)))
            sent = time.monotonic() - started
            response = await client.post("/v1/completions", json=request_body(model, request, oracle_priority))
            finish = time.monotonic() - started
            tokens = response.json().get("usage", {}).get("completion_tokens") if response.status_code == 200 else None
            priority = response.headers.get("x-pars-priority")
            return Answer(sent, finish, response.status_code, tokens, response.headers.get("x-pars-replica"),
                          int(priority) if priority is not None else None)

        return list(await asyncio.gather(*(one(r) for r in workload.requests)))


def checked_summary(answers: Sequence[Answer], workload: Workload, tag: str) -> LatencySummary:
    for request, answer in zip(workload.requests, answers, strict=True):
        if answer.status != 200 or answer.completion_tokens != request.output_tokens:
            raise BenchmarkError(f"{tag}: request {request.index} answered HTTP {answer.status} with "
                                 f"{answer.completion_tokens} tokens, expected {request.output_tokens}")
    return summarise([RequestTiming(i, a.sent_s, math.nan, a.finish_s, a.completion_tokens or 0, math.nan)
                      for i, a in enumerate(answers)])


def run_routing_benchmark(settings: ReplicaSettings, setups: Sequence[str], plan: ArrivalPlan, repeats: int,
                          target_model: str | None, out: Path) -> RoutingResult:
    """Start the replicas once; per repeat, each setup's router replays the burst, then the Poisson loads."""
    unknown = [name for name in setups if name not in SETUPS]
    if unknown or not setups:
        raise ValueError(f"unknown setups {unknown}; choose from {', '.join(SETUPS)}")
    if setups[0] != BASELINE:
        raise ValueError(f"the first setup must be {BASELINE}: its burst throughput sets the Poisson rates")
    pool, target, prompts = workload_pool(None, target_model, split_of(Path(settings.predictor)))
    result = RoutingResult(prompts, target)
    burst = plan.burst_workload(pool)
    env = server_environment(kv_cache_gib=settings.kv_cache_gib)
    ports = [free_port() for _ in range(settings.replicas)]
    upstreams = [f"http://127.0.0.1:{port}" for port in ports]
    with ExitStack() as stack:
        for i, port in enumerate(ports):
            stack.enter_context(running_process(settings.replica_command(port), env, upstreams[i],
                                                out / f"replica{i}.log"))
        for repeat in range(repeats):
            for name in setups:
                _run_setup(settings, SETUPS[name], repeat, burst, plan, pool, upstreams, env, out, result)
    return result


def _run_setup(settings: ReplicaSettings, setup: RouterSetup, repeat: int, burst: Workload | None,
               plan: ArrivalPlan, pool: Sequence[PoolPrompt], upstreams: Sequence[str], env: dict[str, str],
               out: Path, result: RoutingResult) -> None:
    """One router in front of the running replicas: a warm-up burst, then each measured workload."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running_process(settings.router_command(setup, upstreams, port), env, url,
                         out / f"router-{setup.name}.log", start_timeout_s=180):
        warm_up = ArrivalPlan(burst=2 * len(upstreams) * settings.max_num_seqs, length_scale=0.02,
                              seed=plan.seed + 1000).burst_workload(pool)
        checked_summary(asyncio.run(replay(url, settings.model, warm_up, setup.oracle_priority)), warm_up, "warm-up")
        if burst is not None:
            _measure(url, settings.model, setup, repeat, burst, None, result)
        capacity = result.capacity_rps if math.isfinite(result.capacity_rps) else None
        for workload, load in plan.rate_workloads(pool, capacity) if plan.loads or plan.rates else []:
            _measure(url, settings.model, setup, repeat, workload, load, result)


def _measure(url: str, model: str, setup: RouterSetup, repeat: int, workload: Workload, load: float | None,
             result: RoutingResult) -> None:
    before = os.getloadavg()
    metrics_before = httpx.get(f"{url}/metrics").text
    answers = asyncio.run(replay(url, model, workload, setup.oracle_priority))
    tag = f"{setup.name}, repeat {repeat}, {workload.label}"
    summary = checked_summary(answers, workload, tag)
    scoring = _scoring_between(metrics_before, httpx.get(f"{url}/metrics").text)
    run = SetupRun(setup.name, repeat, workload.label, load, summary, tuple(answers), scoring, before, os.getloadavg())
    result.runs.append(run)
    if setup.name == BASELINE and workload.arrival == "burst" and not math.isfinite(result.capacity_rps):
        result.capacity_rps = summary.throughput_rps
    log.info("%s: mean %.2f s, P99 %.2f s, per replica %s", tag, summary.e2e.mean, summary.e2e.p99,
             run.per_replica())


def _scoring_between(before: str, after: str) -> float:
    count = (metric_value(after, "pars_router_scoring_seconds_count")
             - metric_value(before, "pars_router_scoring_seconds_count"))
    seconds = (metric_value(after, "pars_router_scoring_seconds_sum")
               - metric_value(before, "pars_router_scoring_seconds_sum"))
    return 1000 * seconds / count if count else math.nan
