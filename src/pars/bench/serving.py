"""Replay serving workloads over real HTTP against `pars serve` (vLLM's OpenAI server) on 127.0.0.1.

Why HTTP and not an in-process AsyncLLM: it is the path users deploy, the client sits in its own process
like a real one, and everything the server does for a request (tokenising, PARS scoring inside the engine
core, streaming) happens inside the measured latency. Each policy gets a fresh server with the same
settings; the FCFS server runs first, and its burst throughput (the engine's capacity) sets the Poisson
and trace rates that every policy then replays identically.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import httpx

from pars.bench.latency import LatencySummary, RequestTiming, summarise
from pars.bench.workload import Workload, WorkloadRequest
from pars.integrations.vllm.serve import serve_argv

log = logging.getLogger(__name__)

WARMUP_REQUESTS = 5
WARMUP_TOKENS = 16
ORACLE_FIELD = "pars_true_length"


class BenchmarkError(RuntimeError):
    """A run lost a request, got the wrong number of tokens, or the server did not come up."""


@dataclass(frozen=True)
class EngineSettings:
    """The same for every policy in a run; `kv_cache_gib` goes to VLLM_CPU_KVCACHE_SPACE."""

    model: str
    max_num_seqs: int = 4
    max_model_len: int = 4096
    kv_cache_gib: int = 1
    start_timeout_s: float = 900.0

    def server_argv(self, policy: str, predictor_dir: Path | None, port: int) -> list[str]:
        # Eager mode skips a long torch.compile at start; prefix caching off so runs do not depend on order.
        extra = ["--max-model-len", str(self.max_model_len), "--enforce-eager", "--no-enable-prefix-caching",
                 "--seed", "0"]
        return serve_argv(self.model, policy, predictor_dir, "127.0.0.1", port, self.max_num_seqs, extra)


@dataclass(frozen=True)
class RunResult:
    policy: str
    workload: Workload
    load: float | None  # rate as a fraction of the FCFS burst capacity, when known
    timings: tuple[RequestTiming, ...]
    summary: LatencySummary


@dataclass
class PolicyRecord:
    """Per-policy facts for the report: unloaded TTFT, machine load around the runs, server log."""

    policy: str
    predictor: str | None
    unloaded_ttft_s: float = float("nan")
    start_s: float = float("nan")
    loadavg_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    loadavg_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    log_file: str = ""


@dataclass
class BenchmarkResult:
    runs: list[RunResult] = field(default_factory=list)
    policies: list[PolicyRecord] = field(default_factory=list)
    capacity_rps: float | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


@contextmanager
def running_server(settings: EngineSettings, policy: str, predictor_dir: Path | None, log_file: Path
                   ) -> Iterator[str]:
    """Start the policy's server, wait for /health, yield its base URL; stop its process group afterwards."""
    port = free_port()
    argv = settings.server_argv(policy, predictor_dir, port)
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(settings.kv_cache_gib)}
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log.info("starting %s server: %s", policy, " ".join(argv))
    with log_file.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(process, base_url, settings.start_timeout_s, log_file)
        yield base_url
    finally:
        _stop(process)


def _wait_healthy(process: subprocess.Popen, base_url: str, timeout_s: float, log_file: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchmarkError(f"server exited with code {process.returncode}; log {log_file}:\n{_log_tail(log_file)}")
        try:
            if httpx.get(f"{base_url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1.0)
    raise BenchmarkError(f"server not healthy after {timeout_s:.0f} s; log {log_file}:\n{_log_tail(log_file)}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's own process group (it started the engine core), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def request_body(model: str, prompt: str, output_tokens: int) -> dict:
    """Exactly `output_tokens` tokens (ignore_eos); the oracle reads the true length from vllm_xargs.

    Every policy gets the identical body; only the oracle's scheduler looks at the extra field.
    """
    return {"model": model, "prompt": prompt, "max_tokens": output_tokens, "ignore_eos": True,
            "temperature": 0.0, "stream": True, "stream_options": {"include_usage": True},
            "vllm_xargs": {ORACLE_FIELD: output_tokens}}


async def _stream_one(client: httpx.AsyncClient, url: str, body: dict, clock: Callable[[], float]
                      ) -> tuple[float, float, float, int]:
    """(sent, first token, finish, completion tokens) for one streamed completion."""
    sent = clock()
    first: float | None = None
    tokens: int | None = None
    async with client.stream("POST", url, json=body) as response:
        if response.status_code != 200:
            await response.aread()
            raise BenchmarkError(f"HTTP {response.status_code}: {response.text[:300]}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices") and first is None:
                first = clock()
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    finish = clock()
    if first is None or tokens is None:
        raise BenchmarkError(f"stream ended without tokens or usage (first={first}, tokens={tokens})")
    return sent, first, finish, tokens


async def _replay(base_url: str, model: str, requests: Sequence[WorkloadRequest]) -> list[RequestTiming]:
    url = f"{base_url}/v1/completions"
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(timeout=httpx.Timeout(None), limits=limits) as client:
        start = time.perf_counter()

        def clock() -> float:
            return time.perf_counter() - start

        async def one(request: WorkloadRequest) -> RequestTiming:
            await asyncio.sleep(max(0.0, request.arrival_s - clock()))
            sent, first, finish, tokens = await _stream_one(
                client, url, request_body(model, request.prompt, request.output_tokens), clock)
            if tokens != request.output_tokens:
                raise BenchmarkError(f"request {request.index} got {tokens} tokens, expected {request.output_tokens}")
            return RequestTiming(request.index, sent, first, finish, tokens)

        return list(await asyncio.gather(*(one(r) for r in requests)))


def replay(base_url: str, model: str, requests: Sequence[WorkloadRequest]) -> list[RequestTiming]:
    """Send every request at its arrival time; any lost or short request fails the run loudly."""
    timings = asyncio.run(_replay(base_url, model, requests))
    if sorted(t.index for t in timings) != sorted(r.index for r in requests):
        raise BenchmarkError("requests lost or duplicated in the replay")
    return timings


def warm_up(base_url: str, model: str, concurrency: int) -> float:
    """Outside any measurement: one concurrent batch (warms the batch shapes), then a few requests one at
    a time; returns the median TTFT of those (the unloaded TTFT)."""
    def request(i: int) -> WorkloadRequest:
        return WorkloadRequest(i, f"warm-up request {i}: say something.", 0.0, WARMUP_TOKENS, WARMUP_TOKENS)

    replay(base_url, model, [request(i) for i in range(concurrency)])
    ttfts = [replay(base_url, model, [request(i)])[0].ttft_s for i in range(WARMUP_REQUESTS)]
    return statistics.median(ttfts)


def _loadavg() -> tuple[float, float, float]:
    return os.getloadavg()


@dataclass(frozen=True)
class PolicySpec:
    name: str
    predictor: Path | None  # None: the policy needs no checkpoint


WorkloadsFor = Callable[[float | None], list[tuple[Workload, float | None]]]


def run_benchmark(settings: EngineSettings, policies: Sequence[PolicySpec], burst: Workload | None,
                  rate_workloads: WorkloadsFor, log_dir: Path) -> BenchmarkResult:
    """Run every policy on the same workloads, one fresh server each, FCFS first.

    `rate_workloads(capacity)` builds the (workload, load) list once FCFS's burst capacity is known
    (capacity None when there is no burst).
    """
    if not policies or policies[0].name != "fcfs":
        raise ValueError("the policy list must start with fcfs (it calibrates the rates)")
    result = BenchmarkResult()
    workloads: list[tuple[Workload, float | None]] | None = None
    for spec in policies:
        record = PolicyRecord(spec.name, str(spec.predictor) if spec.predictor else None,
                              loadavg_before=_loadavg(), log_file=str(log_dir / f"server-{spec.name}.log"))
        started = time.monotonic()
        with running_server(settings, spec.name, spec.predictor, Path(record.log_file)) as base_url:
            record.start_s = time.monotonic() - started
            record.unloaded_ttft_s = warm_up(base_url, settings.model, 2 * settings.max_num_seqs)
            log.info("%s: server up in %.0f s, unloaded TTFT %.3f s", spec.name, record.start_s, record.unloaded_ttft_s)
            if burst is not None:
                run = _measure(spec.name, base_url, settings.model, burst, None, record.unloaded_ttft_s)
                result.runs.append(run)
                if workloads is None:
                    result.capacity_rps = run.summary.throughput_rps
            if workloads is None:
                workloads = rate_workloads(result.capacity_rps)
            for workload, load in workloads:
                result.runs.append(_measure(spec.name, base_url, settings.model, workload, load, record.unloaded_ttft_s))
        record.loadavg_after = _loadavg()
        result.policies.append(record)
    return result


def _measure(policy: str, base_url: str, model: str, workload: Workload, load: float | None,
             unloaded_ttft_s: float) -> RunResult:
    timings = tuple(replay(base_url, model, workload.requests))
    summary = summarise(timings, unloaded_ttft_s)
    log.info("%s, %s: mean e2e %.2f s, p90 %.2f s, %.2f req/s", policy, workload.label, summary.e2e.mean,
             summary.e2e.p90, summary.throughput_rps)
    return RunResult(policy, workload, load, timings, summary)
