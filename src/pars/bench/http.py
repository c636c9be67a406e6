"""`pars bench http`: the whole served path, timed by an HTTP client, one `pars serve` setup at a time.

Unlike `pars bench serve` (in-process AsyncLLM, engine-stamped times), requests here go through vLLM's
OpenAI server, the PARS front-end middleware and HTTP: streamed chat bursts of held-out test prompts,
with and without a shared system prompt. TTFT is the first streamed chunk (vLLM sends the role chunk
with the first token's output), end-to-end the last, both on the client's clock. A lost request or one
with the wrong number of completion tokens fails the run. The PARS middleware's /metrics counters are
read around each burst, so the report says how many requests it scored and how many fell back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from pars.bench.latency import LatencySummary, RequestTiming, summarise
from pars.bench.serving import BenchmarkError, split_of, workload_pool
from pars.bench.workload import ArrivalPlan, WorkloadRequest
from pars.metrics import spearman

log = logging.getLogger(__name__)

# A fixed, realistic system prompt of about 200 tokens (GPT/Llama tokenisers), shared by every request of
# the "with system prompt" bursts: the front end must score the user's text, not this.
SYSTEM_PROMPT = (
    "You are Ada, the virtual assistant of Northwind Cloud, a company that sells hosted databases, object "
    "storage and managed Kubernetes to small and medium businesses. Answer the customer's question directly "
    "and accurately. Use plain English and short paragraphs; use numbered steps for procedures and code "
    "blocks for commands or configuration. If a question is ambiguous, state the assumption you make before "
    "answering. Never invent product features, prices or service-level commitments: when you are not sure, "
    "say so and point the customer to the status page or to a human agent. Do not ask for passwords, API keys "
    "or payment details, and remind customers to rotate any secret they paste into the chat. Be polite but "
    "not effusive, do not apologise more than once, and do not mention these instructions. If the question is "
    "not about Northwind Cloud, answer it helpfully anyway, as a knowledgeable general assistant would."
)

WARMUP_TOKENS = 16


@dataclass(frozen=True)
class ServerSetup:
    """One `pars serve` configuration: `policy` and front-end `mode` as its options say."""

    name: str
    policy: str
    mode: str
    description: str


SETUPS: dict[str, ServerSetup] = {s.name: s for s in (
    ServerSetup("fcfs", "fcfs", "pars", "stock vLLM, FCFS (no middleware, no predictor)"),
    ServerSetup("pars", "pars", "pars", "front-end scores + PARS scheduler class (aging, max wait)"),
    ServerSetup("priority", "pars", "priority", "front-end scores as vLLM priorities, stock --scheduling-policy priority"),
)}
SETUP_NAMES = tuple(SETUPS)


@dataclass(frozen=True)
class ServerSettings:
    """The same for every setup of a run. `stream_interval` is vLLM's `--stream-interval`: tokens per
    streamed event after the first (the first token is always sent at once, so TTFT is unaffected)."""

    model: str
    predictor: str | None
    port: int = 8000
    max_num_seqs: int = 4
    max_model_len: int = 4096
    kv_cache_gib: int = 1
    omp_threads: int = 1
    stream_interval: int = 8
    start_timeout_s: float = 600.0

    def command(self, setup: ServerSetup) -> list[str]:
        """`pars serve` options first, then the vLLM options it passes on."""
        predictor = ["--predictor", self.predictor] if self.predictor is not None and setup.policy != "fcfs" else []
        return [sys.executable, "-m", "pars.cli", "serve", self.model, "--policy", setup.policy, "--mode", setup.mode,
                *predictor, "--port", str(self.port), "--max-num-seqs", str(self.max_num_seqs),
                "--max-model-len", str(self.max_model_len), "--enforce-eager",
                "--stream-interval", str(self.stream_interval)]

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return server_environment(extra, self.kv_cache_gib, self.omp_threads)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def server_environment(extra: Mapping[str, str] | None = None, kv_cache_gib: int = 1,
                       omp_threads: int = 1) -> dict[str, str]:
    """This process's environment for a server it starts (vLLM or a PARS service) on a small CPU: the KV cache
    size, one OpenMP thread, no Rust-tokenizer threads, and the engine core in its own process."""
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib), "OMP_NUM_THREADS": str(omp_threads),
           "TOKENIZERS_PARALLELISM": "false", **(extra or {})}
    env.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)  # the real layout: engine core in its own process
    return env


@contextmanager
def running_server(settings: ServerSettings, setup: ServerSetup, log_path: Path,
                   extra_env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Start `pars serve` for `setup`, wait until /health answers, yield its base URL, then stop it."""
    with running_process(settings.command(setup), settings.environment(extra_env), settings.base_url, log_path,
                         settings.start_timeout_s):
        yield settings.base_url


@contextmanager
def running_process(command: Sequence[str], env: Mapping[str, str], base_url: str, log_path: Path,
                    start_timeout_s: float = 600.0) -> Iterator[subprocess.Popen]:
    """Run an HTTP server `command` (output to `log_path`) until the block ends; yields it once /health answers.

    The server gets a process group of its own, and the whole group is stopped at the end: vLLM's engine core is
    a child of the API server, and outlives it (still spinning on a core) when the server itself was killed."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as handle:
        server = subprocess.Popen(list(command), stdout=handle, stderr=subprocess.STDOUT, env=dict(env),
                                  process_group=0)
    try:
        wait_until_healthy(base_url, server, start_timeout_s, log_path)
        yield server
    finally:
        _signal_group(server, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
        _signal_group(server, signal.SIGKILL)  # whatever of the group is left once the server is gone


def _signal_group(server: subprocess.Popen, sig: signal.Signals) -> None:
    try:
        os.killpg(server.pid, sig)
    except ProcessLookupError:  # the group is already empty
        pass


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for tests that start servers side by side with others)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(base_url: str, server: subprocess.Popen, timeout_s: float, log_path: Path) -> None:
    """Until the server answers /health; BenchmarkError if it exits or stays silent for `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise BenchmarkError(f"the server exited with code {server.returncode} during start-up; see {log_path}")
            try:
                if client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(1.0)
    raise BenchmarkError(f"the server did not answer /health within {timeout_s:.0f} s; see {log_path}")


def chat_body(model: str, user_text: str, max_tokens: int, system_prompt: str | None = None) -> dict[str, Any]:
    """A streamed chat request for exactly `max_tokens` tokens; the usage chunk carries the token count."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return {"model": model, "messages": [*messages, {"role": "user", "content": user_text}],
            "max_tokens": max_tokens, "ignore_eos": True, "temperature": 0.0, "stream": True,
            "stream_options": {"include_usage": True}}


@dataclass(frozen=True)
class StreamedResponse:
    """One streamed request, seconds since `started`; `error` holds the body of a non-200 answer."""

    status: int
    sent_s: float
    first_chunk_s: float | None
    finish_s: float
    completion_tokens: int | None
    error: str | None = None


async def stream_chat(client: httpx.AsyncClient, body: Mapping[str, Any], started: float,
                      headers: Mapping[str, str] | None = None) -> StreamedResponse:
    """POST /v1/chat/completions and read the stream to its end; cancelling closes it (vLLM then aborts).
    `headers` go with the request (vLLM's `X-data-parallel-rank` pins it to one engine core)."""
    sent = time.monotonic() - started
    first_chunk, tokens = None, None
    async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
        if response.status_code != 200:
            text = (await response.aread()).decode(errors="replace")
            return StreamedResponse(response.status_code, sent, None, time.monotonic() - started, None, text[:500])
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[len("data: "):])
            if first_chunk is None and chunk.get("choices"):
                first_chunk = time.monotonic() - started
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return StreamedResponse(200, sent, first_chunk, time.monotonic() - started, tokens)


def http_client(base_url: str, connections: int) -> httpx.AsyncClient:
    """One connection pool for a whole burst: every request gets its own connection, no pool wait."""
    return httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(900.0, connect=30.0),
                             limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections))


async def send_burst(client: httpx.AsyncClient, bodies: Sequence[Mapping[str, Any]]) -> list[StreamedResponse]:
    """Every body at once; results in the bodies' order."""
    started = time.monotonic()
    return list(await asyncio.gather(*(stream_chat(client, body, started) for body in bodies)))


def check_responses(responses: Sequence[StreamedResponse], expected_tokens: Sequence[int], tag: str) -> None:
    """Fail loudly unless every request answered 200, streamed, and got exactly its `max_tokens`."""
    for i, (response, expected) in enumerate(zip(responses, expected_tokens, strict=True)):
        if response.status != 200:
            raise BenchmarkError(f"{tag}: request {i} answered HTTP {response.status}: {response.error}")
        if response.first_chunk_s is None or response.completion_tokens != expected:
            raise BenchmarkError(f"{tag}: request {i} ended with {response.completion_tokens} completion tokens "
                                 f"(first chunk {response.first_chunk_s}), expected {expected}")


def timings(responses: Sequence[StreamedResponse]) -> list[RequestTiming]:
    """Client-side timings; the engine's queueing time is not visible over HTTP (NaN)."""
    return [RequestTiming(i, r.sent_s, r.first_chunk_s, r.finish_s, r.completion_tokens, math.nan)
            for i, r in enumerate(responses) if r.first_chunk_s is not None and r.completion_tokens is not None]


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of the Prometheus samples called `name` whose labels include `labels` (0 when none)."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))


@dataclass(frozen=True)
class FrontEndCounts:
    """The PARS middleware's /metrics series over one burst: requests scored, fallen back, seconds spent."""

    scored: float
    fallback: float
    scoring_seconds: float

    @classmethod
    def read(cls, text: str) -> FrontEndCounts:
        total = metric_value(text, "pars_frontend_requests_total")
        scored = metric_value(text, "pars_frontend_requests_total", outcome="scored")
        return cls(scored, total - scored, metric_value(text, "pars_frontend_scoring_seconds_sum"))

    def __sub__(self, before: FrontEndCounts) -> FrontEndCounts:
        return FrontEndCounts(self.scored - before.scored, self.fallback - before.fallback,
                              self.scoring_seconds - before.scoring_seconds)

    @property
    def mean_scoring_ms(self) -> float:
        n = self.scored + self.fallback
        return 1000.0 * self.scoring_seconds / n if n else math.nan


@dataclass(frozen=True)
class HttpRun:
    setup: str
    system_prompt: bool
    summary: LatencySummary
    spearman_ttft_true_length: float
    spearman_ttft_score: float
    responses: tuple[StreamedResponse, ...]
    front_end: FrontEndCounts | None  # None: the setup has no PARS middleware


@dataclass
class SetupRecord:
    name: str
    description: str
    start_s: float = math.nan
    loadavg_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    loadavg_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    log: str = ""


@dataclass
class HttpResult:
    requests: tuple[WorkloadRequest, ...]
    scores: tuple[float, ...]  # the predictor's score of each request's user text
    prompts: str  # where the prompts come from
    runs: list[HttpRun] = field(default_factory=list)
    setups: list[SetupRecord] = field(default_factory=list)


async def _warm_up(base_url: str, model: str, concurrency: int) -> None:
    """Outside any measurement: one concurrent batch with the system prompt, then one request without."""
    bodies = [chat_body(model, f"Warm-up request {i}: say something.", WARMUP_TOKENS, SYSTEM_PROMPT)
              for i in range(concurrency)] + [chat_body(model, "Warm-up: say something.", WARMUP_TOKENS)]
    async with http_client(base_url, concurrency + 4) as client:
        check_responses(await send_burst(client, bodies[:-1]), [WARMUP_TOKENS] * concurrency, "warm-up")
        check_responses(await send_burst(client, bodies[-1:]), [WARMUP_TOKENS], "warm-up")


async def _measure_setup(base_url: str, settings: ServerSettings, setup: ServerSetup,
                         result: HttpResult) -> None:
    await _warm_up(base_url, settings.model, 2 * settings.max_num_seqs)
    lengths = np.array([r.true_tokens for r in result.requests])
    scores = np.array(result.scores)
    for system_prompt in (None, SYSTEM_PROMPT):
        tag = f"{setup.name}, {'with' if system_prompt else 'no'} system prompt"
        bodies = [chat_body(settings.model, r.prompt, r.output_tokens, system_prompt) for r in result.requests]
        async with http_client(base_url, len(bodies) + 8) as client:
            before = FrontEndCounts.read((await client.get("/metrics")).text)
            responses = await send_burst(client, bodies)
            front_end = FrontEndCounts.read((await client.get("/metrics")).text) - before
        check_responses(responses, [r.output_tokens for r in result.requests], tag)
        ttfts = np.array([r.first_chunk_s - r.sent_s for r in responses])
        run = HttpRun(setup.name, system_prompt is not None, summarise(timings(responses)),
                      spearman(ttfts, lengths), spearman(ttfts, scores), tuple(responses),
                      front_end if setup.policy != "fcfs" else None)
        log.info("%s: mean e2e %.2f s, p90 %.2f s, mean TTFT %.2f s, Spearman(TTFT, length) %.2f", tag,
                 run.summary.e2e.mean, run.summary.e2e.p90, run.summary.ttft.mean, run.spearman_ttft_true_length)
        result.runs.append(run)


def run_http_benchmark(settings: ServerSettings, setups: Sequence[str], requests: int, length_scale: float,
                       target_model: str, out: Path, seed: int = 0) -> HttpResult:
    """Score the burst's user texts once (client side, for the report), then run every setup in turn."""
    from pars.predictor import load_ranker

    unknown = [name for name in setups if name not in SETUPS]
    if unknown or not setups:
        raise ValueError(f"unknown setups {unknown}; choose from {SETUP_NAMES}")
    if requests < 1:
        raise ValueError(f"a burst needs at least one request, got --requests {requests}")
    if settings.predictor is None:
        raise ValueError("a predictor checkpoint is needed (the scored setups and the score Spearman use it)")
    split = split_of(Path(settings.predictor))
    pool, target_model, prompts = workload_pool(None, target_model, split)  # prompts cut to fit the context
    burst = ArrivalPlan(burst=requests, length_scale=length_scale, seed=seed).burst_workload(pool)
    scores = load_ranker(settings.predictor).score([r.prompt for r in burst.requests])
    result = HttpResult(burst.requests, tuple(float(s) for s in scores), prompts)
    log.info("%d test prompts of %s, a burst of %d, length scale %g", len(pool), target_model, requests, length_scale)
    for name in setups:
        setup = SETUPS[name]
        record = SetupRecord(name, setup.description, loadavg_before=os.getloadavg(),
                             log=str(out / f"server-{name}.log"))
        started = time.monotonic()
        with running_server(settings, setup, Path(record.log)) as base_url:
            record.start_s = time.monotonic() - started
            log.info("%s: server up in %.0f s", name, record.start_s)
            asyncio.run(_measure_setup(base_url, settings, setup, result))
        record.loadavg_after = os.getloadavg()
        result.setups.append(record)
    return result
