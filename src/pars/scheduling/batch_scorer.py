"""Scores prompts in batches on a background thread so an engine step never waits for the predictor.

Everything submitted while a batch runs forms the next batch. A result that misses `timeout_s` is
reported as a fallback and the late score, if it ever comes, is dropped: each request gets one result.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

logger = logging.getLogger(__name__)

ScoreFn = Callable[[list[str]], Sequence[float]]


class Result(NamedTuple):
    """`size` is set when scoring worked, `reason` when the request falls back."""

    request_id: str
    size: float | None
    reason: str | None


class BatchScorer:
    """A single worker thread; `submit` and `collect` are called from the engine thread."""

    def __init__(
        self,
        score: ScoreFn,
        decode: Callable[[Sequence[int]], str],
        max_batch: int = 32,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.score = score
        self.decode = decode
        self.max_batch = max_batch
        self.timeout_s = timeout_s
        self.clock = clock
        self.prompts_scored = 0
        self._todo: list[tuple[str, Sequence[int]]] = []
        self._done: list[Result] = []
        self._submitted: dict[str, float] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="pars-scorer", daemon=True)
        self._thread.start()

    def submit(self, request_id: str, token_ids: Sequence[int]) -> None:
        with self._cond:
            self._submitted[request_id] = self.clock()
            self._todo.append((request_id, token_ids))
            self._cond.notify_all()

    def has_pending(self) -> bool:
        with self._cond:
            return bool(self._submitted)

    def collect(self, wait_s: float) -> list[Result]:
        """Results ready now; waits up to `wait_s` for the first one if none is ready yet."""
        deadline = self.clock() + wait_s
        with self._cond:
            while not self._done and self._submitted and self.clock() < deadline:
                self._cond.wait(timeout=max(0.0, deadline - self.clock()))
            results = [r for r in self._done if self._submitted.pop(r.request_id, None) is not None]
            self._done.clear()
            now = self.clock()
            late = [rid for rid, t in self._submitted.items() if now - t > self.timeout_s]
            for rid in late:
                del self._submitted[rid]
            results.extend(Result(rid, None, "timeout") for rid in late)
        return results

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=1.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._todo and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                batch, self._todo = self._todo[: self.max_batch], self._todo[self.max_batch :]
            results = self._score_batch(batch)
            with self._cond:
                self._done.extend(results)
                self._cond.notify_all()

    def _score_batch(self, batch: list[tuple[str, Sequence[int]]]) -> list[Result]:
        results: list[Result] = []
        texts: list[tuple[str, str]] = []
        for rid, token_ids in batch:
            try:
                text = self.decode(token_ids)
            except Exception:  # noqa: BLE001 - any decoding failure means "cannot score this prompt"
                logger.debug("cannot decode prompt of request %s", rid, exc_info=True)
                results.append(Result(rid, None, "undecodable"))
                continue
            if not text.strip():
                results.append(Result(rid, None, "empty_prompt"))
            else:
                texts.append((rid, text))
        if not texts:
            return results
        try:
            scores = [float(s) for s in self.score([text for _, text in texts])]
            if len(scores) != len(texts):
                raise ValueError(f"predictor returned {len(scores)} scores for {len(texts)} prompts")
        except Exception:  # noqa: BLE001 - a failing predictor must not take the engine down
            logger.exception("predictor failed on a batch of %d prompts; they keep arrival order", len(texts))
            return results + [Result(rid, None, "predictor_error") for rid, _ in texts]
        self.prompts_scored += len(texts)
        for (rid, _), size in zip(texts, scores):
            ok = math.isfinite(size)
            results.append(Result(rid, size if ok else None, None if ok else "predictor_error"))
        return results
