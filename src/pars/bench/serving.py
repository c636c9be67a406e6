"""Replay serving workloads on a real vLLM engine (AsyncLLM, engine core in its own process) per policy.

Why AsyncLLM and not HTTP to `pars serve`: on 2 shared cores the OpenAI server and an HTTP client had to
handle one streamed event per token, fell seconds behind the engine and delivered whole responses at once,
so client-side timings measured CPU starvation of the front end, not the queue order the policies change.
Here the front end only submits requests and collects the final output (no detokenisation, FINAL_ONLY),
and per-request times come from vLLM's own stats: first and last token as stamped by the engine core,
queueing as engine scheduled - queued. Predicted policies are scored the way `pars serve` scores them:
this process is the engine's front end, and each request goes through the same `FrontEndScorer` and
`annotate` as the server's middleware after its send time, so scoring is on the clock.
Each policy gets a fresh engine with the same settings, all up at once; each workload then runs on every
engine in turn (FCFS first in the burst: its burst throughput, the engine's capacity, sets the Poisson and
trace rates that every policy then replays identically). On a shared VM the engine's speed drifts by tens of
per cent within minutes; one engine after another put whole minutes between the runs a ratio compares.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pars.bench.latency import LatencySummary, RequestTiming, saturated_rps, summarise
from pars.bench.pinning import affinity_restored, pin_now
from pars.bench.traces import load_trace
from pars.bench.workload import (ArrivalPlan, PoolPrompt, Workload, WorkloadRequest, length_hints, prompt_pool,
                                 scale_length)
from pars.data import PromptSplit, load_records
from pars.integrations.vllm.engine import scoped_environ
from pars.integrations.vllm.middleware import annotate
from pars.integrations.vllm.policies import get_policy, scheduler_config
from pars.scheduling.request_fields import TRUE_LENGTH_KEY
from pars.scheduling import NeutralSize, SchedulerSettings
from pars.scoring import FrontEndScorer
from pars.scoring.text import COMPLETIONS
from pars.integrations.vllm.tiny_model import make_tiny_model
from pars.paths import bundled_data_dir

log = logging.getLogger(__name__)

WARMUP_REQUESTS = 5
WARMUP_TOKENS = 16


class BenchmarkError(RuntimeError):
    """A run lost a request or a request got the wrong number of tokens."""


@dataclass(frozen=True)
class EngineSettings:
    """The same for every policy in a run; `kv_cache_gib` goes to VLLM_CPU_KVCACHE_SPACE; `aging_rate`,
    `max_wait_s` (the starvation bound) and `score_budget_ms` go to the ranked policies' scheduler
    settings (None: the scheduler's defaults)."""

    model: str
    max_num_seqs: int = 4
    max_model_len: int = 4096
    kv_cache_gib: int = 1
    aging_rate: float | None = None
    max_wait_s: float | None = None
    fcfs_wait_factor: float | None = None  # starvation bound relative to the estimated FCFS wait
    score_budget_ms: float | None = None  # most an engine step waits for pending scores
    # OMP_NUM_THREADS of the engine processes, the same for every policy: unpinned, OpenMP threads on 2
    # oversubscribed cores made step times swing by 50x between engines (see docs/vllm.md).
    omp_threads: int = 1
    pin: bool = False  # the model worker alone on its CPUs, engine core and front end on the rest (`pars.bench.pinning`)

    def engine_args(self, policy: str, predictor_dir: Path | None, scoring: str = "front") -> Any:  # noqa: ANN401
        """AsyncEngineArgs. Eager mode skips a long compile at start; prefix caching off so runs do not depend
        on order. `scoring` "priority" runs stock vLLM priority scheduling instead of the policy's class."""
        from vllm.engine.arg_utils import AsyncEngineArgs

        chosen = get_policy(policy)
        extra: dict[str, Any] = {}
        if scoring == "priority":
            extra = {"scheduling_policy": "priority"}
        elif chosen.scheduler_cls is not None:
            given = (("aging_rate", self.aging_rate), ("max_wait_s", self.max_wait_s),
                     ("fcfs_wait_factor", self.fcfs_wait_factor), ("budget_ms", self.score_budget_ms))
            bound = {k: v for k, v in given if v is not None}
            extra = {"scheduler_cls": chosen.scheduler_cls,
                     "additional_config": scheduler_config(chosen, predictor_dir, **bound)}
        return AsyncEngineArgs(model=self.model, max_num_seqs=self.max_num_seqs, max_model_len=self.max_model_len,
                               enforce_eager=True, enable_prefix_caching=False, disable_log_stats=False, seed=0,
                               **extra)


@dataclass(frozen=True)
class RunResult:
    policy: str
    workload: Workload
    load: float | None  # rate as a fraction of the FCFS burst capacity, when known
    timings: tuple[RequestTiming, ...]
    summary: LatencySummary
    repeat: int = 0


@dataclass
class PolicyRecord:
    """Per-policy facts for the report: engine start time, unloaded TTFT, machine load around the runs."""

    policy: str
    predictor: str | None
    unloaded_ttft_s: float = float("nan")
    start_s: float = float("nan")
    loadavg_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    loadavg_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    repeat: int = 0
    front_end: str | None = None  # the front-end scorer's counters (warm-up included), e.g. "sized=385 fallback=0"
    cpus: str | None = None  # with --pin: how the CPUs were split (`pars.bench.pinning.pin_now`)


@dataclass
class BenchmarkResult:
    runs: list[RunResult] = field(default_factory=list)
    policies: list[PolicyRecord] = field(default_factory=list)
    capacity_rps: float | None = None  # of the run in progress: FCFS's first burst while its batch was full
    capacities_rps: list[float | None] = field(default_factory=list)  # one per repeat


def sampling_params(output_tokens: int, length_hint: int | None = None,
                    front_end_args: Mapping[str, Any] | None = None) -> Any:  # noqa: ANN401 - SamplingParams
    """Exactly `output_tokens` tokens; every policy gets the same parameters, only the oracle scheduler
    reads the length in extra_args: the true one, or `length_hint` for the pars-ahead diagnostic.
    `front_end_args` are the extra args the front-end scorer adds (the score, or why there is none)."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    return SamplingParams(max_tokens=output_tokens, ignore_eos=True, temperature=0.0, detokenize=False,
                          output_kind=RequestOutputKind.FINAL_ONLY,
                          extra_args={TRUE_LENGTH_KEY: output_tokens if length_hint is None else length_hint,
                                      **(front_end_args or {})})


@dataclass
class FrontEnd:
    """What `pars serve`'s middleware does to a request, done in this (the engine's front-end) process:
    the same FrontEndScorer and the same `annotate`, so the benchmark measures what users run."""

    scorer: FrontEndScorer
    mode: str  # "pars" (extra args for the PARS scheduler) or "priority" (vLLM's integer priority)
    neutral: NeutralSize = field(default_factory=NeutralSize)

    async def fields(self, prompt: str, request_id: str) -> dict[str, Any]:
        result = await self.scorer.score(COMPLETIONS, {"prompt": prompt})
        return annotate({}, result, self.mode, self.neutral, request_id)

    def finished(self, request_id: str) -> None:
        self.neutral.release(request_id)


async def _replay(engine: Any, tag: str, requests: Sequence[WorkloadRequest],
                  length_hints: Mapping[str, int] | None = None, front_end: FrontEnd | None = None
                  ) -> list[RequestTiming]:
    """Submit every request at its arrival time (through `front_end` when given, after the send time);
    any unfinished or short request fails the run loudly.

    Times are seconds since the replay began, on the monotonic clock the engine core stamps tokens with.
    """
    start = time.monotonic()

    async def one(request: WorkloadRequest) -> RequestTiming:
        await asyncio.sleep(max(0.0, request.arrival_s - (time.monotonic() - start)))
        sent = time.monotonic() - start
        final = None
        hint = length_hints[request.prompt] if length_hints else None
        request_id = f"{tag}-{request.index}"
        fields = await front_end.fields(request.prompt, request_id) if front_end else {}
        params = sampling_params(request.output_tokens, hint, fields.get("vllm_xargs"))
        async for output in engine.generate(request.prompt, params, request_id=request_id,
                                            priority=fields.get("priority", 0)):
            final = output
        if front_end:
            front_end.finished(request_id)
        tokens = len(final.outputs[0].token_ids) if final is not None and final.finished else -1
        if tokens != request.output_tokens:
            raise BenchmarkError(f"{tag}: request {request.index} ended with {tokens} tokens, "
                                 f"expected {request.output_tokens}")
        stats = final.metrics
        return RequestTiming(request.index, sent, stats.first_token_ts - start, stats.last_token_ts - start, tokens,
                             queueing_s=stats.scheduled_ts - stats.queued_ts)

    timings = list(await asyncio.gather(*(one(r) for r in requests)))
    if sorted(t.index for t in timings) != sorted(r.index for r in requests):
        raise BenchmarkError(f"{tag}: requests lost or duplicated in the replay")
    return timings


async def _warm_up(engine: Any, concurrency: int, front_end: FrontEnd | None) -> float:
    """Outside any measurement: one concurrent batch (warms the batch shapes), then a few requests one at
    a time; returns the median TTFT of those (the unloaded TTFT)."""
    def request(i: int) -> WorkloadRequest:
        return WorkloadRequest(i, f"warm-up request {i}: say something.", 0.0, WARMUP_TOKENS, WARMUP_TOKENS)

    await _replay(engine, "warm-up-batch", [request(i) for i in range(concurrency)], front_end=front_end)
    ttfts = [(await _replay(engine, f"warm-up-{i}", [request(i)], front_end=front_end))[0].ttft_s
             for i in range(WARMUP_REQUESTS)]
    return statistics.median(ttfts)


@dataclass(frozen=True)
class PolicySpec:
    """`engine_policy`: the scheduler the engine runs (default: `name`). `scoring` for predicted policies:
    "front" (the front-end scorer, as `pars serve` runs), "engine" (scored inside the engine core: the
    pars-engine diagnostic) or "priority" (front-end scores as vLLM priorities, stock scheduler).
    `length_hints` (prompt -> tokens) replace the true length the oracle scheduler reads: pars-ahead, the
    predictor's order scored before the clock starts, a diagnostic of ordering quality alone."""

    name: str
    predictor: Path | None  # None: the policy needs no checkpoint
    engine_policy: str | None = None
    length_hints: Mapping[str, int] | None = None
    scoring: str = "front"


WorkloadsFor = Callable[[float | None], list[tuple[Workload, float | None]]]


# vLLM's CPU model worker busy-polls for about a second after its last step (SpinCondition): the next
# engine's run waits this long, so an idle worker never shares the CPU with the one being measured.
QUIET_S = 1.5


@dataclass
class _Engine:
    spec: PolicySpec
    engine: Any
    front_end: FrontEnd | None
    record: PolicyRecord


async def _start(settings: EngineSettings, spec: PolicySpec) -> _Engine:
    from vllm.v1.engine.async_llm import AsyncLLM

    record = PolicyRecord(spec.name, str(spec.predictor) if spec.predictor else None, loadavg_before=os.getloadavg())
    started = time.monotonic()
    running = _Engine(spec, AsyncLLM.from_engine_args(settings.engine_args(spec.engine_policy or spec.name,
                                                                           spec.predictor, spec.scoring)),
                      front_end_for(spec), record)
    record.start_s = time.monotonic() - started
    return running


def _stop(running: _Engine) -> None:
    running.engine.shutdown()
    running.engine = None
    gc.collect()  # AsyncLLM sits in a reference cycle; collected at exit, its __del__ raises in vLLM 0.32
    if running.front_end is not None:
        running.front_end.scorer.close()
        running.record.front_end = running.front_end.scorer.counters.summary()
        log.info("%s: front-end scorer %s", running.spec.name, running.record.front_end)
    running.record.loadavg_after = os.getloadavg()


def rotated(items: Sequence[Any], k: int) -> list[Any]:
    """`items` starting at position k (mod len): each workload runs the policies in a different order, so
    none is always measured first or always right after another."""
    k %= len(items)
    return [*items[k:], *items[:k]]


async def _run_repeat(settings: EngineSettings, policies: Sequence[PolicySpec], burst: Workload | None,
                      rate_workloads: WorkloadsFor, result: BenchmarkResult) -> None:
    """Every policy's engine up at once, then each workload on each engine in turn: the runs compared on one
    workload lie seconds apart, not a whole engine's lifetime, so the VM's drift between them stays small."""
    running: list[_Engine] = []
    try:
        for spec in policies:
            running.append(await _start(settings, spec))
        cpus = pin_now() if settings.pin else None
        for item in running:
            item.record.cpus = cpus
            await asyncio.sleep(QUIET_S)
            item.record.unloaded_ttft_s = await _warm_up(item.engine, 2 * settings.max_num_seqs, item.front_end)
            log.info("%s: engine up in %.0f s, unloaded TTFT %.3f s", item.spec.name, item.record.start_s,
                     item.record.unloaded_ttft_s)
        if burst is not None:  # FCFS first: its burst throughput is the capacity the rates are built from
            for item in running:
                await asyncio.sleep(QUIET_S)
                result.runs.append(await _measure(item.engine, item.spec, burst, None, item.front_end))
                if item.spec.name == "fcfs":
                    result.capacity_rps = saturated_rps(result.runs[-1].timings, settings.max_num_seqs)
        for k, (workload, load) in enumerate(rate_workloads(result.capacity_rps), start=1):
            for item in rotated(running, k):
                await asyncio.sleep(QUIET_S)
                result.runs.append(await _measure(item.engine, item.spec, workload, load, item.front_end))
    finally:
        for item in running:
            _stop(item)
    result.policies += [item.record for item in running]


def run_benchmark(settings: EngineSettings, policies: Sequence[PolicySpec], burst: Workload | None,
                  rate_workloads: WorkloadsFor) -> BenchmarkResult:
    """Run every policy on the same workloads, one fresh engine each, all engines up together, FCFS first.

    `rate_workloads(capacity)` builds the (workload, load) list from FCFS's burst capacity (None when
    there is no burst); it must return the same workloads for the same capacity.
    """
    if not policies or policies[0].name != "fcfs":
        raise ValueError("the policy list must start with fcfs (it calibrates the rates)")
    result = BenchmarkResult()
    with engine_environment(settings), affinity_restored():  # engines start on every CPU, so vLLM binds its worker as it would
        asyncio.run(_run_repeat(settings, policies, burst, rate_workloads, result))
    return result


@contextmanager
def engine_environment(settings: EngineSettings) -> Iterator[None]:
    """The variables engine processes read at start, restored afterwards so the caller's process is unchanged.

    OMP_NUM_THREADS is the same for every policy's engine core: unpinned, loading a predictor changed the
    engine process's OpenMP threading and stock FCFS steps ran 40x slower on 2 cores (docs/vllm.md).
    """
    with scoped_environ({"VLLM_CPU_KVCACHE_SPACE": str(settings.kv_cache_gib), "OMP_NUM_THREADS": str(settings.omp_threads),
                         "VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "WARNING")}):  # readable output
        yield


def front_end_for(spec: PolicySpec) -> FrontEnd | None:
    """The front-end scorer of a predicted policy (settings from PARS_* variables, as the middleware reads)."""
    if spec.predictor is None or spec.scoring == "engine" or spec.length_hints is not None:
        return None
    scorer = FrontEndScorer.for_checkpoint(spec.predictor, SchedulerSettings.from_sources(None, os.environ))
    return FrontEnd(scorer, "priority" if spec.scoring == "priority" else "pars")


async def _measure(engine: Any, spec: PolicySpec, workload: Workload, load: float | None,
                   front_end: FrontEnd | None = None) -> RunResult:
    policy = spec.name
    hints = ({prompt: scale_length(n, workload.length_scale) for prompt, n in spec.length_hints.items()}
             if spec.length_hints else None)
    timings = tuple(await _replay(engine, f"{policy}-{workload.label}", workload.requests, hints, front_end))
    summary = summarise(timings)
    log.info("%s, %s: mean e2e %.2f s, p90 %.2f s, %.2f req/s", policy, workload.label, summary.e2e.mean,
             summary.e2e.p90, summary.throughput_rps)
    return RunResult(policy, workload, load, timings, summary)


def split_of(predictor_dir: Path | None) -> PromptSplit:
    """The prompt split the predictor was trained with, so benchmark prompts are ones it never saw;
    PromptSplit(seed=0), the training default, when no policy uses a checkpoint."""
    from pars.predictor.config import PredictorConfig

    return PredictorConfig.read(predictor_dir).split if predictor_dir else PromptSplit(seed=0)


DEFAULT_TARGET_MODEL = "gpt-3.5-turbo-1106"


def workload_pool(data: Path | None, target_model: str | None, split: PromptSplit,
                  max_prompt_chars: int = 4000) -> tuple[list[PoolPrompt], str, str]:
    """(prompts with true lengths, whose lengths they are, where they come from).

    Bundled data: the test split of `target_model` (default gpt-3.5-turbo-1106). A user's JSONL file
    (`pars train --data` format): every row of `target_model`, which may be omitted when the file holds
    one model's lengths; those prompts are the user's own traffic, so no split applies.
    """
    if data is None:
        target = target_model or DEFAULT_TARGET_MODEL
        records = load_records(bundled_data_dir(), models=[target])
        return prompt_pool(records, target, split, max_prompt_chars), target, f"test split {split.to_dict()} of the bundled data"
    records = load_records(data)
    models = sorted({r.model for r in records})
    if target_model is None and len(models) > 1:
        raise ValueError(f"{data} has lengths of {len(models)} models ({', '.join(models[:5])}...): "
                         "pick one with --target-model")
    target = target_model or models[0]
    return prompt_pool(records, target, None, max_prompt_chars), target, f"every row of {target} in {data}"


def run_serving_benchmark(settings: EngineSettings, policies: Sequence[PolicySpec], plan: ArrivalPlan,
                          pool: Sequence[PoolPrompt], repeats: int = 1) -> BenchmarkResult:
    """Run every policy on workloads built from `pool`, `repeats` times (fresh engines and a fresh FCFS
    capacity each time), so the spread of each ratio can be reported."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    trace_times = load_trace(plan.trace) if plan.trace else None
    log.info("%d prompts; length scale %g; %d repeat(s)", len(pool), plan.length_scale, repeats)
    policies = [replace(p, length_hints=scored_ahead_hints(p.predictor, pool)) if p.name == SCORED_AHEAD else p
                for p in policies]
    combined = BenchmarkResult()
    for repeat in range(repeats):
        result = run_benchmark(settings, policies, plan.burst_workload(pool),
                               lambda capacity: plan.rate_workloads(pool, capacity, trace_times))
        combined.runs += [replace(run, repeat=repeat) for run in result.runs]
        combined.policies += [replace(record, repeat=repeat) for record in result.policies]
        combined.capacities_rps.append(result.capacity_rps)
    return combined


BASELINES = ("pointwise", "listmle", "classify")
SCORED_AHEAD = "pars-ahead"
# Diagnostic and alternative ways to run the PARS predictor: scored inside the engine core (as before the
# front end existed), and front-end scores as stock vLLM priorities (`pars serve --mode priority`).
SCORING_VARIANTS = {"pars-engine": "engine", "pars-priority": "priority"}


def scored_ahead_hints(predictor_dir: Path, pool: Sequence[PoolPrompt]) -> dict[str, int]:
    from pars.predictor import load_ranker

    scores = load_ranker(predictor_dir).score([p.prompt for p in pool])
    return length_hints(pool, scores)


# Which ranker a PARS policy scores with, from the checkpoint given (`serving_checkpoint`): "pars" what
# `pars serve` serves by default (the student inside the teacher's checkpoint, when there is one).
SCORER_VARIANTS = {"pars-teacher": "teacher", "pars-student": "student"}


def resolve_policies(names: Sequence[str] | None, predictor: Path | None) -> list[PolicySpec]:
    """fcfs first (it calibrates the rates), then the rest; by default fcfs, pars, oracle and every
    baseline whose checkpoint exists. A predicted policy without a checkpoint raises ValueError."""
    from pars.predictor.checkpoint import holds_checkpoint
    from pars.predictor.loading import serving_checkpoint

    if names is None:
        names = ["pars", "oracle"] + [b for b in BASELINES if holds_checkpoint(get_policy(b).default_predictor_dir())]
    ordered = ["fcfs"] + [n for n in dict.fromkeys(names) if n != "fcfs"]
    specs = []
    for name in ordered:
        variant = name == SCORED_AHEAD or name in SCORING_VARIANTS or name in SCORER_VARIANTS
        policy = get_policy("pars" if variant else name)
        directory = None
        if policy.uses_predictor:
            directory = predictor if policy.name == "pars" and predictor else policy.default_predictor_dir()
            if not holds_checkpoint(directory):
                raise ValueError(f"policy {name} needs a predictor checkpoint at {directory}; train one with "
                                 f"`pars train --out {directory}` or pass --predictor")
            scorer = "teacher" if name == SCORED_AHEAD else SCORER_VARIANTS.get(name, "auto")
            directory = serving_checkpoint(directory, scorer) if policy.name == "pars" else directory
        specs.append(PolicySpec(name, directory, "oracle" if name == SCORED_AHEAD else policy.name,
                                scoring=SCORING_VARIANTS.get(name, "front")))
    return specs


def ensure_model(model_dir: Path) -> Path:
    """The served model directory; the default tiny model is built there (offline, deterministic) if absent."""
    if not (model_dir / "config.json").exists():
        log.info("building the tiny model in %s", model_dir)
        make_tiny_model(model_dir)
    return model_dir
