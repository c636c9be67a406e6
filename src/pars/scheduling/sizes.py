"""Size sources: where a waiting request's size estimate comes from (smaller runs first).

("Policy" in PARS means the named serving choice a user picks: fcfs, pars, oracle, or a baseline.)
oracle: the true response length the client sent (benchmarks only). predicted: the PARS ranker's score,
normally computed by the front end and carried by the request; requests that arrive without one are
scored here, in micro-batches off the engine step (the fallback path).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass

from pars.scoring.batcher import ScoreFn, ScoreResult, ScoringBatcher


@dataclass(frozen=True)
class RequestView:
    """What a policy may read from an engine request: `front_end_score` is the score the API server
    attached, `front_end_fallback` the reason it could not (then the engine does not score it again)."""

    request_id: str
    prompt_token_ids: Sequence[int]
    true_length: object = None
    front_end_score: object = None
    front_end_fallback: object = None


@dataclass(frozen=True)
class Verdict:
    """A size for the request (smaller runs first), or the reason it falls back to arrival order."""

    request_id: str
    size: float | None = None
    fallback_reason: str | None = None
    scoring_s: float | None = None  # how long the engine's own scoring took, for verdicts it scored

    @classmethod
    def fallback(cls, request_id: str, reason: str) -> Verdict:
        return cls(request_id, None, reason)


class SizeSource(ABC):
    """Turns arriving requests into verdicts; the engine calls `on_arrival` once per request and
    `collect` once per step, and must not wait longer than `wait_s` there."""

    @abstractmethod
    def on_arrival(self, request: RequestView) -> Verdict | None:
        """The verdict now, or None when it will come later from `collect`."""

    def collect(self, wait_s: float) -> list[Verdict]:
        """Verdicts that became ready since the last call."""
        return []

    def has_pending(self) -> bool:
        return False

    def forget(self, request_id: str) -> bool:
        """The request finished or was aborted: drop any work still pending for it; True if there was."""
        return False

    def close(self) -> None:
        """Release threads or models."""


class OracleSizes(SizeSource):
    """Size = log2(1 + true length), read from the request; a missing or invalid length falls back.

    log2 makes one key unit mean "twice as long", the same order of scale as predictor scores.
    """

    def on_arrival(self, request: RequestView) -> Verdict:
        try:
            length = float(request.true_length)  # type: ignore[arg-type]  # HTTP may send "123"
        except (TypeError, ValueError):
            length = math.nan
        if isinstance(request.true_length, bool) or not 0 <= length < math.inf:
            return Verdict.fallback(request.request_id, "missing_true_length")
        return Verdict(request.request_id, math.log2(1.0 + length))


def prompt_problem(token_ids: Sequence[int], max_prompt_tokens: int) -> str | None:
    """Why a prompt cannot be scored without even decoding it, or None."""
    if len(token_ids) == 0:
        return "empty_prompt"
    if len(token_ids) > max_prompt_tokens:
        return "prompt_too_long"
    return None


def finite_float(value: object) -> float | None:
    """`value` as a finite float (HTTP extra args may carry "1.5"), else None; booleans are not numbers."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class PredictedSizes(SizeSource):
    """Size = the front end's score when the request carries one; otherwise the ranker's score of the
    decoded prompt, scored in micro-batches on the scorer thread (requests from `LLM.generate`, token-id
    prompts). `timeout_s` bounds how long a request waits for that fallback score."""

    def __init__(
        self,
        score: ScoreFn,
        decode: Callable[[Sequence[int]], str],
        max_prompt_tokens: int = 32768,
        max_batch: int = 8,
        max_queued: int = 256,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_prompt_tokens = max_prompt_tokens
        self.timeout_s = timeout_s
        self.clock = clock
        self.batcher: ScoringBatcher[Sequence[int]] = ScoringBatcher(score, decode, max_batch=max_batch,
                                                                      max_queued=max_queued)
        self._pending: dict[str, tuple[float, Future[ScoreResult]]] = {}

    def on_arrival(self, request: RequestView) -> Verdict | None:
        rid = request.request_id
        if request.front_end_score is not None:
            size = finite_float(request.front_end_score)
            return Verdict(rid, size) if size is not None else Verdict.fallback(rid, "invalid_front_end_score")
        if request.front_end_fallback is not None:
            return Verdict.fallback(rid, f"front_end_{request.front_end_fallback}")
        problem = prompt_problem(request.prompt_token_ids, self.max_prompt_tokens)
        if problem is not None:
            return Verdict.fallback(rid, problem)
        self._pending[rid] = (self.clock(), self.batcher.submit(request.prompt_token_ids))
        return None

    def collect(self, wait_s: float) -> list[Verdict]:
        futures = [future for _, future in self._pending.values()]
        if wait_s > 0 and futures and not any(f.done() for f in futures):
            wait(futures, timeout=wait_s, return_when=FIRST_COMPLETED)
        now = self.clock()
        verdicts = []
        for rid, (submitted, future) in list(self._pending.items()):
            if future.done():
                del self._pending[rid]
                result = future.result()
                verdicts.append(Verdict(rid, result.score, result.reason, scoring_s=now - submitted))
            elif now - submitted > self.timeout_s:
                del self._pending[rid]
                future.cancel()  # dropped before scoring if its batch has not started
                verdicts.append(Verdict.fallback(rid, "timeout"))
        return verdicts

    def has_pending(self) -> bool:
        return bool(self._pending)

    def forget(self, request_id: str) -> bool:
        entry = self._pending.pop(request_id, None)
        if entry is not None:
            entry[1].cancel()
        return entry is not None

    def close(self) -> None:
        self.batcher.close()
