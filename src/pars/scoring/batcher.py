"""Micro-batched scoring on one worker thread: the one scoring component behind every front door.

Everything submitted while a batch runs forms the next batch (up to `max_batch`), so concurrent
requests share a forward pass and no caller's thread or event loop ever runs the predictor. Each
submission gets a `concurrent.futures.Future` of a `ScoreResult`; a future cancelled before its batch
starts (the caller timed out, or the request was aborted or finished) is never scored.

Every future resolves, whatever happens: past `max_queued` waiting items a submission falls back at
once ("scorer_overloaded"), so an overloaded scorer does not burn the CPU on requests nobody waits for;
a worker that dies mid-batch resolves that batch as "scorer_crashed" and is restarted (after
`MAX_RESTARTS` crashes everything falls back as "scorer_dead"); `close()` returns within its timeout and
whatever is left falls back as "scorer_closed".
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from typing import Generic, NamedTuple, TypeVar

logger = logging.getLogger(__name__)

ScoreFn = Callable[[list[str]], Sequence[float]]
T = TypeVar("T")
MAX_RESTARTS = 3
# The worker runs this much nicer than the thread that started it: on a host where the scorer shares cores
# with the engine or the server's event loop, a batch of scoring yields to them instead of competing.
WORKER_NICE = 10


def lower_thread_priority(increment: int) -> None:
    """Make the CALLING thread `increment` nicer (Linux: a thread is a task with its own nice value). Raising
    one's own nice needs no privilege; elsewhere, or if refused, the thread keeps its priority (logged)."""
    if increment <= 0 or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment))
    except OSError as err:
        logger.warning("could not lower the scorer thread's priority (%s); it runs at the caller's", err)


class ScoreResult(NamedTuple):
    """`score` when scoring worked; otherwise `reason` says why the request falls back. `seconds`: how long
    the request spent being scored, as `FrontEndScorer` measured it (None from the batcher itself)."""

    score: float | None
    reason: str | None = None
    seconds: float | None = None

    @classmethod
    def fallback(cls, reason: str) -> ScoreResult:
        return cls(None, reason)

    @property
    def outcome(self) -> str:
        """The counter label of this result: "scored", or the reason it fell back."""
        return "scored" if self.score is not None else self.reason or "unknown"


def settle(future: Future[ScoreResult], result: ScoreResult) -> None:
    """Resolve `future` unless something else already did (close() and the worker can race)."""
    try:
        future.set_result(result)
    except InvalidStateError:
        pass


class ScoringBatcher(Generic[T]):
    """Scores items of type T (prompt text, or token ids with a decoding `to_text`) in micro-batches."""

    def __init__(self, score: ScoreFn, to_text: Callable[[T], str] = str, max_batch: int = 8,
                 max_queued: int = 256, nice: int = WORKER_NICE) -> None:
        if max_batch < 1 or max_queued < 1:
            raise ValueError(f"max_batch and max_queued must be >= 1, got {max_batch} and {max_queued}")
        self.score = score
        self.to_text = to_text
        self.max_batch = max_batch
        self.max_queued = max_queued
        self.nice = nice
        self.prompts_scored = 0
        self.abandoned = 0  # cancelled before their batch ran: never scored
        self.restarts = 0
        self._todo: list[tuple[T, Future[ScoreResult]]] = []
        self._in_flight: list[Future[ScoreResult]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._dead = False
        self._thread = self._start_worker()

    def submit(self, item: T) -> Future[ScoreResult]:
        """A future that resolves to the item's result; cancel it to drop the item if not yet started."""
        future: Future[ScoreResult] = Future()
        with self._cond:
            reason = ("scorer_closed" if self._closed else "scorer_dead" if self._dead
                      else "scorer_overloaded" if len(self._todo) >= self.max_queued else None)
            if reason is None:
                self._todo.append((item, future))
                self._cond.notify_all()
                return future
        future.set_result(ScoreResult.fallback(reason))
        return future

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def worker_id(self) -> int | None:
        """The worker thread's native id (for its nice value), None before it started."""
        return self._thread.native_id

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop within `timeout_s`: queued items and a batch still running then fall back as `scorer_closed`."""
        with self._cond:
            self._closed = True
            left, self._todo = self._todo, []
            self._cond.notify_all()
        self._fall_back([future for _, future in left], "scorer_closed")
        self._thread.join(timeout=timeout_s)
        self._fall_back(list(self._in_flight), "scorer_closed")

    def _fall_back(self, futures: list[Future[ScoreResult]], reason: str) -> None:
        for future in futures:
            if future.cancelled():
                self.abandoned += 1
            elif future.done():
                continue
            elif future.running() or future.set_running_or_notify_cancel():
                settle(future, ScoreResult.fallback(reason))

    def _start_worker(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="pars-scorer", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        lower_thread_priority(self.nice)
        try:
            self._serve()
        except BaseException:  # noqa: BLE001 - whatever killed the worker, its callers must get an answer
            logger.exception("the PARS scorer thread died")
            self._recover()

    def _recover(self) -> None:
        """Resolve the batch that was running; restart the worker, or give up after MAX_RESTARTS."""
        self._fall_back(list(self._in_flight), "scorer_crashed")
        with self._cond:
            if self._closed:
                return
            if self.restarts < MAX_RESTARTS:
                self.restarts += 1
                self._thread = self._start_worker()
                return
            self._dead = True
            left, self._todo = self._todo, []
        logger.error("the PARS scorer died %d times; every request now falls back (scorer_dead)", self.restarts + 1)
        self._fall_back([future for _, future in left], "scorer_dead")

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._todo and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                batch, self._todo = self._todo[: self.max_batch], self._todo[self.max_batch :]
                live = [(item, future) for item, future in batch if future.set_running_or_notify_cancel()]
                self._in_flight = [future for _, future in live]
            self.abandoned += len(batch) - len(live)
            if live:
                results = score_items(self.score, self.to_text, [item for item, _ in live])
                self.prompts_scored += sum(result.score is not None for result in results)
                for future, result in zip(self._in_flight, results):
                    settle(future, result)
            self._in_flight = []


def score_items(score: ScoreFn, to_text: Callable[[T], str], items: Sequence[T]) -> list[ScoreResult]:
    """One result per item, in order: its score, or why it falls back ("undecodable", "empty_prompt",
    "predictor_error" when the predictor raises, returns the wrong count or a non-finite score). Never raises."""
    results: list[ScoreResult | None] = [None] * len(items)
    texts: list[tuple[int, str]] = []
    for i, item in enumerate(items):
        try:
            text = to_text(item)
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
            scores = [float(s) for s in score([text for _, text in texts])]
            if len(scores) != len(texts):
                raise ValueError(f"predictor returned {len(scores)} scores for {len(texts)} prompts")
        except Exception:  # noqa: BLE001 - a failing predictor must not take its caller down
            logger.exception("predictor failed on a batch of %d prompts; they fall back", len(texts))
            scores = [math.nan] * len(texts)
        for (i, _), value in zip(texts, scores):
            results[i] = ScoreResult(value) if math.isfinite(value) else ScoreResult.fallback("predictor_error")
    return [r for r in results if r is not None]
