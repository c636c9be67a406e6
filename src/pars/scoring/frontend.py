"""Scoring requests in the API-server process, on asyncio: the text the user wrote.

Two ways, chosen by the ranker's cost:
- a cheap ranker (the distilled student, tens of microseconds) scores on the event loop itself, at once: a
  hand-off to a thread would cost more than the scoring, and no request ever waits for a score;
- a fine-tuned encoder (milliseconds) is micro-batched on the batcher's worker thread, below the event
  loop's OS priority. The event loop only submits and awaits; a result later than `timeout_s` falls back
  ("timeout"), and the abandoned item is dropped from the batcher's to-do list before it is scored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pars.scheduling.settings import SchedulerSettings
from pars.scheduling.stats import SchedulingCounters
from pars.scoring.batcher import ScoreFn, ScoreResult, ScoringBatcher, score_items
from pars.scoring.text import UnreadableRequest, user_text

if TYPE_CHECKING:
    from pars.predictor.loading import Ranker

FRONT_END_THREADS = 1


def predictor_score_fn(directory: str | Path, batch_size: int = 8, lazy: bool = False) -> ScoreFn:
    """The `score` of a checkpoint of any kind (`load_ranker`); `lazy` checks the files now and loads on the
    first call (on the scorer thread), so an engine that never needs its fallback scorer never pays for it.
    Loading changes no thread settings: inside an engine they are the engine's."""
    from pars.predictor import Ranker, load_ranker
    from pars.predictor.checkpoint import check_checkpoint

    check_checkpoint(directory)
    loaded: list[Ranker] = [] if lazy else [load_ranker(directory)]

    def score(prompts: list[str]) -> Any:  # noqa: ANN401 - np.ndarray
        if not loaded:
            loaded.append(load_ranker(directory))
        return loaded[0].score(prompts, batch_size=batch_size)

    return score


def ranker_score_fn(ranker: Ranker, batch_size: int) -> ScoreFn:
    def score(prompts: list[str]) -> Any:  # noqa: ANN401 - np.ndarray
        return ranker.score(prompts, batch_size=batch_size)

    return score


class FrontEndScorer:
    """`await score(endpoint, body)` -> ScoreResult; counts every outcome in `counters`.

    `inline`: score on the caller's thread (for a ranker of microseconds); else on a `ScoringBatcher`."""

    def __init__(self, score: ScoreFn, timeout_s: float = 1.0, max_batch: int = 8, max_queued: int = 256,
                 inline: bool = False) -> None:
        if not timeout_s > 0:
            raise ValueError(f"front-end scoring timeout must be > 0 s, got {timeout_s}")
        self.inline = inline
        self.score_fn = score
        self.batcher: ScoringBatcher[str] | None = (
            None if inline else ScoringBatcher(score, max_batch=max_batch, max_queued=max_queued))
        self.timeout_s = timeout_s
        self.counters = SchedulingCounters()

    @classmethod
    def for_checkpoint(cls, directory: str | Path, settings: SchedulerSettings) -> FrontEndScorer:
        """The API-server scorer of `pars serve` and of the serving benchmark: inline for a cheap ranker (a
        distilled student), else on a worker thread. One torch thread: idle OpenMP threads would spin on the
        cores the engine needs."""
        import torch

        from pars.predictor import load_ranker

        torch.set_num_threads(FRONT_END_THREADS)  # the front end owns its process's threads
        ranker = load_ranker(directory)
        return cls(ranker_score_fn(ranker, settings.max_batch), timeout_s=settings.frontend_timeout_s,
                   max_batch=settings.max_batch, max_queued=settings.max_queued,
                   inline=bool(getattr(ranker, "cheap", False)))

    def swap(self, ranker: Ranker) -> None:
        """Score with `ranker` from the next request on (the learner's hot swap: one reference, no wait). Only an
        inline scorer swaps: a worker thread's batcher keeps the ranker it started with."""
        if not self.inline:
            raise ValueError("only an inline (distilled student) front-end scorer can be swapped")
        self.score_fn = ranker_score_fn(ranker, 1)

    def is_alive(self) -> bool:
        """Whether this scorer can still score (an inline one always can)."""
        return self.batcher is None or self.batcher.is_alive()

    async def score(self, endpoint: str, body: Mapping[str, Any]) -> ScoreResult:
        """The score of the request's user text (see pars.scoring.text), or a fallback reason; with the
        seconds it took."""
        started = time.perf_counter()
        try:
            text = user_text(endpoint, body)
        except UnreadableRequest as err:
            return self._count(ScoreResult.fallback(err.reason), started)
        if self.batcher is None:
            return self._count(score_items(self.score_fn, str, [text])[0], started)
        return self._count(await self._score_text(self.batcher, text), started)

    async def _score_text(self, batcher: ScoringBatcher[str], text: str) -> ScoreResult:
        future = batcher.submit(text)  # the predictor reads its first MAX_READ_CHARS
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s)
        except TimeoutError:
            future.cancel()  # not started yet: it is never scored
            return ScoreResult.fallback("timeout")

    def _count(self, result: ScoreResult, started: float) -> ScoreResult:
        if result.score is None:
            self.counters.fallback[result.outcome] += 1
        else:
            self.counters.sized += 1
        return result._replace(seconds=time.perf_counter() - started)

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
