"""Scoring requests in the API-server process, on asyncio: the text the user wrote, micro-batched.

The event loop only submits and awaits; the predictor runs on the batcher's thread. A result later
than `timeout_s` falls back ("timeout"), so scoring never delays a request by more than that bound,
and the abandoned item is dropped from the batcher's to-do list before it is scored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pars.scheduling.settings import SchedulerSettings
from pars.scheduling.stats import SchedulingCounters
from pars.scoring.batcher import ScoreFn, ScoreResult, ScoringBatcher
from pars.scoring.text import UnreadableRequest, user_text

FRONT_END_THREADS = 1


def predictor_score_fn(directory: str | Path, batch_size: int = 8, lazy: bool = False,
                       threads: int | None = None) -> ScoreFn:
    """`Predictor.score` of a checkpoint; `lazy` checks the files now and loads on the first call
    (on the scorer thread), so an engine that never needs its fallback scorer never pays for it.
    `threads` sets torch's intra-op threads for the whole process when the predictor loads: only for a
    caller that owns the process's threads (the API-server front end); leave None inside an engine.
    `Predictor.load` itself never changes them."""
    import torch

    from pars.predictor import Predictor
    from pars.predictor.model import check_checkpoint

    def load() -> Predictor:
        if threads:
            torch.set_num_threads(threads)
        return Predictor.load(directory)

    check_checkpoint(directory)
    loaded: list[Predictor] = [] if lazy else [load()]

    def score(prompts: list[str]) -> Any:  # noqa: ANN401 - np.ndarray
        if not loaded:
            loaded.append(load())
        return loaded[0].score(prompts, batch_size=batch_size)

    return score


class FrontEndScorer:
    """`await score(endpoint, body)` -> ScoreResult; counts every outcome in `counters`."""

    def __init__(self, score: ScoreFn, timeout_s: float = 1.0, max_batch: int = 8, max_queued: int = 256) -> None:
        if not timeout_s > 0:
            raise ValueError(f"front-end scoring timeout must be > 0 s, got {timeout_s}")
        self.batcher: ScoringBatcher[str] = ScoringBatcher(score, max_batch=max_batch, max_queued=max_queued)
        self.timeout_s = timeout_s
        self.counters = SchedulingCounters()

    @classmethod
    def for_checkpoint(cls, directory: str | Path, settings: SchedulerSettings) -> FrontEndScorer:
        """The API-server scorer of `pars serve` and of the serving benchmark. One torch thread: the scorer
        is one worker thread anyway, and idle OpenMP threads would spin on the cores the engine needs."""
        return cls(predictor_score_fn(directory, batch_size=settings.max_batch, threads=FRONT_END_THREADS),
                   timeout_s=settings.frontend_timeout_s, max_batch=settings.max_batch,
                   max_queued=settings.max_queued)

    async def score(self, endpoint: str, body: Mapping[str, Any]) -> ScoreResult:
        """The score of the request's user text (see pars.scoring.text), or a fallback reason; with the
        seconds it took."""
        started = time.perf_counter()
        try:
            text = user_text(endpoint, body)
        except UnreadableRequest as err:
            return self._count(ScoreResult.fallback(err.reason), started)
        return self._count(await self._score_text(text), started)

    async def _score_text(self, text: str) -> ScoreResult:
        future = self.batcher.submit(text)  # the predictor reads its first MAX_READ_CHARS
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
        self.batcher.close()
