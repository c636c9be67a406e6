"""Micro-batched scoring on one worker thread: the one scoring component behind every front door.

Everything submitted while a batch runs forms the next batch (up to `max_batch`), so concurrent
requests share a forward pass and no caller's thread or event loop ever runs the predictor. Each
submission gets a `concurrent.futures.Future` of a `ScoreResult`; a future cancelled before its batch
starts (the caller timed out, or the request was aborted or finished) is never scored.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, NamedTuple, TypeVar

logger = logging.getLogger(__name__)

ScoreFn = Callable[[list[str]], Sequence[float]]
T = TypeVar("T")


class ScoreResult(NamedTuple):
    """`score` when scoring worked; otherwise `reason` says why the request falls back."""

    score: float | None
    reason: str | None = None

    @classmethod
    def fallback(cls, reason: str) -> ScoreResult:
        return cls(None, reason)


class ScoringBatcher(Generic[T]):
    """Scores items of type T (prompt text, or token ids with a decoding `to_text`) in micro-batches."""

    def __init__(self, score: ScoreFn, to_text: Callable[[T], str] = str, max_batch: int = 8) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.score = score
        self.to_text = to_text
        self.max_batch = max_batch
        self.prompts_scored = 0
        self.abandoned = 0  # cancelled before their batch ran: never scored
        self._todo: list[tuple[T, Future[ScoreResult]]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="pars-scorer", daemon=True)
        self._thread.start()

    def submit(self, item: T) -> Future[ScoreResult]:
        """A future that resolves to the item's result; cancel it to drop the item if not yet started."""
        future: Future[ScoreResult] = Future()
        with self._cond:
            if self._closed:
                future.set_result(ScoreResult.fallback("scorer_closed"))
                return future
            self._todo.append((item, future))
            self._cond.notify_all()
        return future

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop after the running batch; anything still queued falls back as `scorer_closed`."""
        with self._cond:
            self._closed = True
            left, self._todo = self._todo, []
            self._cond.notify_all()
        for _, future in left:
            if future.set_running_or_notify_cancel():
                future.set_result(ScoreResult.fallback("scorer_closed"))
            else:
                self.abandoned += 1
        self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._todo and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                batch, self._todo = self._todo[: self.max_batch], self._todo[self.max_batch :]
            live = [(item, future) for item, future in batch if future.set_running_or_notify_cancel()]
            self.abandoned += len(batch) - len(live)
            if live:
                for future, result in zip((f for _, f in live), self._score_batch([item for item, _ in live])):
                    future.set_result(result)

    def _score_batch(self, items: list[T]) -> list[ScoreResult]:
        results: list[ScoreResult | None] = [None] * len(items)
        texts: list[tuple[int, str]] = []
        for i, item in enumerate(items):
            try:
                text = self.to_text(item)
            except Exception:  # noqa: BLE001 - any decoding failure means "cannot score this prompt"
                logger.debug("cannot turn item %d into text", i, exc_info=True)
                results[i] = ScoreResult.fallback("undecodable")
                continue
            if text.strip():
                texts.append((i, text))
            else:
                results[i] = ScoreResult.fallback("empty_prompt")
        if texts:
            try:
                scores = [float(s) for s in self.score([text for _, text in texts])]
                if len(scores) != len(texts):
                    raise ValueError(f"predictor returned {len(scores)} scores for {len(texts)} prompts")
            except Exception:  # noqa: BLE001 - a failing predictor must not take its caller down
                logger.exception("predictor failed on a batch of %d prompts; they fall back", len(texts))
                scores = [math.nan] * len(texts)
            else:
                self.prompts_scored += len(texts)
            for (i, _), score in zip(texts, scores):
                results[i] = ScoreResult(score) if math.isfinite(score) else ScoreResult.fallback("predictor_error")
        return [r for r in results if r is not None]
