"""vLLM V1 scheduler classes that order the waiting queue with a `pars.scheduling` policy.

Thin glue over vLLM's non-public scheduler interface, for the releases in
`pars.integrations.vllm.versions` (what moved between them is read through `compat`). The scheduler
only orders: the API server's front end scores each request and the score arrives in
`extra_args["pars_score"]`. A request without one (offline `LLM.generate`, token-id prompts) is scored
here as a fallback: its token ids are decoded with the served model's tokenizer and scored on the
scorer thread, off the engine step. Each class has a synchronous and an async-scheduling flavour;
constructing either one yields the flavour that matches the engine's `async_scheduling` setting.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar

from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.request_queue import RequestQueue
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.request import Request

from pars.integrations.vllm import compat
from pars.integrations.vllm.metrics import scheduler_metrics
from pars.scheduling import (
    NeutralSize,
    OracleSizes,
    PredictedSizes,
    RankedQueue,
    RequestView,
    SchedulerSettings,
    SchedulingCounters,
    SizeSource,
    Verdict,
)
from pars.scheduling.request_fields import FALLBACK_KEY, SCORE_KEY, TRUE_LENGTH_KEY

# A child of vLLM's "vllm" logger: the engine-core process configures only that one, so messages
# logged under our own package name would be dropped there.
logger = logging.getLogger("vllm.pars")

COUNTER_LOG_INTERVAL_S = 10.0
LEFT_BEFORE_SCORE = "left_before_score"  # finished or aborted while its fallback score was pending


class RankedRequestQueue(RequestQueue):
    """vLLM's RequestQueue interface over a `RankedQueue`; "prepend" re-inserts at the request's key."""

    def __init__(self, ranked: RankedQueue[Request]) -> None:
        self.ranked = ranked

    def add_request(self, request: Request) -> None:
        self.ranked.add(request, request.arrival_time)

    def pop_request(self) -> Request:
        return self.ranked.pop()

    def peek_request(self) -> Request:
        return self.ranked.peek()

    def prepend_request(self, request: Request) -> None:
        self.add_request(request)

    def prepend_requests(self, requests: Iterable[Request]) -> None:
        for request in requests:
            self.add_request(request)

    def remove_request(self, request: Request) -> None:
        self.ranked.remove(request)

    def remove_requests(self, requests: Iterable[Request]) -> None:
        self.ranked.remove_many(requests)

    def __bool__(self) -> bool:
        return bool(self.ranked)

    def __len__(self) -> int:
        return len(self.ranked)

    def __iter__(self) -> Iterator[Request]:
        return iter(self.ranked)


def request_view(request: Request) -> RequestView:
    extra = (request.sampling_params.extra_args if request.sampling_params else None) or {}
    return RequestView(
        request_id=request.request_id,
        prompt_token_ids=request.prompt_token_ids or [],
        true_length=extra.get(TRUE_LENGTH_KEY),
        front_end_score=extra.get(SCORE_KEY),
        front_end_fallback=extra.get(FALLBACK_KEY),
    )


class RankedScheduler(Scheduler):
    """Stock vLLM scheduling, except every queue it admits from is a `RankedQueue` fed by a `SizeSource`.

    Besides `waiting`, vLLM keeps requests that wait on something else (0.31+: `kv_holding_waiting`,
    requests that still hold KV blocks, drained first; see `compat`); all are ranked, so PARS order and
    the starvation bound hold in each. A preempted request returns to its place by its key (its arrival and size are kept),
    not to the front: its key already reflects how long it has waited, and the bound still applies. The
    preemption victim is vLLM's own choice (the most recently admitted request).

    Public, read by tests and benchmarks: `counters` (SchedulingCounters), `sizes` (the size source),
    `settings` (SchedulerSettings). Counters are Prometheus series on vLLM's /metrics (see
    pars.integrations.vllm.metrics) and are logged (at most every 10 s) when they change and at shutdown.
    """

    policy_name: ClassVar[str]

    def __new__(cls, vllm_config: Any, *args: Any, **kwargs: Any) -> RankedScheduler:  # noqa: ARG004
        """The async flavour of `cls` when the engine schedules asynchronously (vLLM's default on GPUs):
        a synchronous subclass there would silently turn async scheduling off."""
        if vllm_config.scheduler_config.async_scheduling and not issubclass(cls, AsyncScheduler):
            cls = ASYNC_FLAVOURS.get(cls, cls)
        return super().__new__(cls)

    def __init__(self, vllm_config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(vllm_config, *args, **kwargs)
        self.settings = SchedulerSettings.from_sources(vllm_config.additional_config, os.environ)
        self.sizes = self.make_size_source(vllm_config)
        self.counters = SchedulingCounters()
        self.metrics = scheduler_metrics()
        self.engine = str(compat.engine_index(vllm_config))  # the series' `engine` label, as vLLM's own
        self.neutral = NeutralSize()
        epoch = time.time()
        self.ranked_queues: dict[str, RankedQueue[Request]] = {
            name: RankedQueue(self.settings.aging, epoch=epoch) for name in compat.admission_queues(self)}
        for name, ranked in self.ranked_queues.items():
            setattr(self, name, RankedRequestQueue(ranked))
        self.ranked = self.ranked_queues["waiting"]
        self._admitted: set[str] = set()
        self._score_wait_s = self.settings.budget_ms / 1000.0
        self._last_logged = (time.monotonic(), self.counters.summary())
        logger.info("PARS %s scheduler: %s", self.policy_name, self.settings)

    def make_size_source(self, vllm_config: Any) -> SizeSource:
        raise NotImplementedError

    def add_request(self, request: Request) -> None:
        is_new = request.request_id not in self.requests
        super().add_request(request)
        if is_new:
            verdict = self.sizes.on_arrival(request_view(request))
            if verdict is not None:
                self._apply(verdict)

    def schedule(self, *args: Any, **kwargs: Any):  # noqa: ANN201 - vLLM's SchedulerOutput
        wait_s = self._score_wait_s if self._choice_matters() else 0.0
        for verdict in self.sizes.collect(wait_s):
            self._apply(verdict)
        now = time.time()
        for ranked in self.ranked_queues.values():
            ranked.set_clock(now)
        self._maybe_log_counters()
        output = super().schedule(*args, **kwargs)
        self._observe_admissions(output.scheduled_new_reqs, now)
        return output

    def _choice_matters(self) -> bool:
        """Waiting for scores only pays when more requests wait than admission has room for (vLLM's
        admission limit, less running requests and paused streaming sessions)."""
        free = compat.admission_limit(self) - len(self.running) - compat.paused_sessions(self)
        waiting = sum(len(ranked) for ranked in self.ranked_queues.values())
        return self.sizes.has_pending() and waiting > free

    def _apply(self, verdict: Verdict) -> None:
        request = self.requests.get(verdict.request_id)
        if request is None:
            return  # finished or aborted before its size came
        if verdict.scoring_s is not None:
            self.metrics.scoring_seconds.labels(engine=self.engine, policy=self.policy_name).observe(
                verdict.scoring_s)
        if verdict.size is None:
            self._count(verdict.fallback_reason or "unknown")
            size = self.neutral.assign(request.request_id)
        else:
            self._count(None)
            self.neutral.observe(verdict.size)
            size = verdict.size
        for ranked in self.ranked_queues.values():
            ranked.set_size(request, size)

    def _count(self, fallback_reason: str | None) -> None:
        """One outcome per request: sized (None) or the reason it fell back."""
        if fallback_reason is None:
            self.counters.sized += 1
        else:
            self.counters.fallback[fallback_reason] += 1
        self.metrics.requests.labels(engine=self.engine, policy=self.policy_name,
                                     outcome=fallback_reason or "sized").inc()

    def _observe_admissions(self, scheduled: Sequence[Any], now: float) -> None:
        """Queue wait at each request's first admission, split by what ordered it."""
        for new in scheduled:
            request = self.requests.get(new.req_id)
            if request is None or new.req_id in self._admitted:
                continue
            self._admitted.add(new.req_id)
            ordered_by = ("pending" if not self.ranked.has_size(request)
                          else "fallback" if self.neutral.holds(new.req_id) else "estimate")
            self.metrics.queue_wait_seconds.labels(engine=self.engine, policy=self.policy_name,
                                                   ordered_by=ordered_by).observe(max(0.0, now - request.arrival_time))

    def _free_request(self, request: Request, *args: Any, **kwargs: Any):  # noqa: ANN201
        for ranked in self.ranked_queues.values():
            ranked.forget(request)
        if self.sizes.forget(request.request_id):
            # it ran (or was aborted) before its score came: admitted in arrival order, counted as such
            self._count(LEFT_BEFORE_SCORE)
        self.neutral.release(request.request_id)
        self._admitted.discard(request.request_id)
        return super()._free_request(request, *args, **kwargs)

    def _maybe_log_counters(self) -> None:
        summary = self.counters.summary()
        last_time, last_summary = self._last_logged
        if summary != last_summary and time.monotonic() - last_time >= COUNTER_LOG_INTERVAL_S:
            logger.info("PARS %s counters: %s", self.policy_name, summary)
            self._last_logged = (time.monotonic(), summary)

    def shutdown(self) -> None:
        self.sizes.close()
        logger.info("PARS %s counters at shutdown: %s", self.policy_name, self.counters.summary())
        super().shutdown()


def _tokenizer_decoder(vllm_config: Any) -> Callable[[Sequence[int]], str]:
    """Decode with the served model's tokenizer; ids outside its vocabulary raise (-> "undecodable")."""
    from transformers import AutoTokenizer

    model_config = vllm_config.model_config
    tokenizer = AutoTokenizer.from_pretrained(
        model_config.tokenizer, revision=model_config.tokenizer_revision,
        trust_remote_code=model_config.trust_remote_code,
    )
    vocab_size = len(tokenizer)

    def decode(token_ids: Sequence[int]) -> str:
        bad = [t for t in token_ids if not 0 <= t < vocab_size]
        if bad:
            raise ValueError(f"token ids outside the vocabulary: {bad[:5]}")
        return tokenizer.decode(token_ids, skip_special_tokens=True)

    return decode


class PARSScheduler(RankedScheduler):
    """Waiting queue by predicted rank (PARS or a baseline predictor, chosen by checkpoint path).

    Front-end scores are used as they come; the checkpoint is loaded (on the scorer thread) only when
    the first request without one arrives. A wrong predictor path fails at engine start.
    """

    policy_name = "predicted"

    def make_size_source(self, vllm_config: Any) -> SizeSource:
        from pars.paths import default_predictor_dir
        from pars.scoring import predictor_score_fn

        directory = self.settings.predictor or default_predictor_dir()
        return PredictedSizes(
            score=predictor_score_fn(directory, batch_size=self.settings.max_batch, lazy=True),
            decode=_tokenizer_decoder(vllm_config),
            max_prompt_tokens=self.settings.max_prompt_tokens,
            max_batch=self.settings.max_batch,
            max_queued=self.settings.max_queued,
            timeout_s=self.settings.timeout_s,
        )


class OracleScheduler(RankedScheduler):
    """Waiting queue by the true response length in `SamplingParams.extra_args["pars_true_length"]`
    (HTTP: `vllm_xargs`); for benchmarks, the shortest-job-first reference."""

    policy_name = "oracle"

    def make_size_source(self, vllm_config: Any) -> SizeSource:
        return OracleSizes()


class PARSAsyncScheduler(PARSScheduler, AsyncScheduler):
    """PARSScheduler for engines with async scheduling (what constructing PARSScheduler yields there)."""


class OracleAsyncScheduler(OracleScheduler, AsyncScheduler):
    """OracleScheduler for engines with async scheduling."""


ASYNC_FLAVOURS: dict[type[RankedScheduler], type[RankedScheduler]] = {
    PARSScheduler: PARSAsyncScheduler,
    OracleScheduler: OracleAsyncScheduler,
}
