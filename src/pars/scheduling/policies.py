"""Ordering policies behind one interface, chosen by name: where a request's size estimate comes from.

fcfs: every request has the same size (arrival order). oracle: the true response length the client
sent (benchmarks only). predicted: the PARS predictor's score, computed in batches off the engine step.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from pars.scheduling.batch_scorer import BatchScorer, ScoreFn


@dataclass(frozen=True)
class RequestView:
    """What a policy may read from an engine request."""

    request_id: str
    prompt_token_ids: Sequence[int]
    true_length: object = None


@dataclass(frozen=True)
class Verdict:
    """A size for the request (smaller runs first), or the reason it falls back to arrival order."""

    request_id: str
    size: float | None = None
    fallback_reason: str | None = None

    @classmethod
    def fallback(cls, request_id: str, reason: str) -> Verdict:
        return cls(request_id, None, reason)


class OrderingPolicy(ABC):
    """Turns arriving requests into verdicts; the engine calls `on_arrival` once per request and
    `collect` once per step, and must not wait longer than `wait_s` there."""

    name: ClassVar[str]

    @abstractmethod
    def on_arrival(self, request: RequestView) -> Verdict | None:
        """The verdict now, or None when it will come later from `collect`."""

    def collect(self, wait_s: float) -> list[Verdict]:
        """Verdicts that became ready since the last call."""
        return []

    def has_pending(self) -> bool:
        return False

    def close(self) -> None:
        """Release threads or models."""


class FCFSPolicy(OrderingPolicy):
    """Same size for everyone: the queue degenerates to arrival order (aging changes nothing)."""

    name = "fcfs"

    def on_arrival(self, request: RequestView) -> Verdict:
        return Verdict(request.request_id, 0.0)


class OraclePolicy(OrderingPolicy):
    """Size = log2(1 + true length), read from the request; a missing or invalid length falls back.

    log2 makes one key unit mean "twice as long", the same order of scale as predictor scores.
    """

    name = "oracle"

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


class PredictedPolicy(OrderingPolicy):
    """Size = predictor score of the decoded prompt, scored in batches by a background thread."""

    name = "predicted"

    def __init__(
        self,
        score: ScoreFn,
        decode: Callable[[Sequence[int]], str],
        max_prompt_tokens: int = 32768,
        max_batch: int = 32,
        timeout_s: float = 5.0,
    ) -> None:
        self.max_prompt_tokens = max_prompt_tokens
        self.scorer = BatchScorer(score, decode, max_batch=max_batch, timeout_s=timeout_s)

    def on_arrival(self, request: RequestView) -> Verdict | None:
        problem = prompt_problem(request.prompt_token_ids, self.max_prompt_tokens)
        if problem is not None:
            return Verdict.fallback(request.request_id, problem)
        self.scorer.submit(request.request_id, request.prompt_token_ids)
        return None

    def collect(self, wait_s: float) -> list[Verdict]:
        return [
            Verdict(rid, size) if reason is None else Verdict.fallback(rid, reason)
            for rid, size, reason in self.scorer.collect(wait_s)
        ]

    def has_pending(self) -> bool:
        return self.scorer.has_pending()

    def close(self) -> None:
        self.scorer.close()


POLICY_CLASSES: dict[str, type[OrderingPolicy]] = {
    cls.name: cls for cls in (FCFSPolicy, OraclePolicy, PredictedPolicy)
}
