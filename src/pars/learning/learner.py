"""`pars serve --learn DIR`: the API server learns the served model's lengths from its own finished requests.

Every finished request is logged (pars.learning.length_log). Every `every` new lines a refit runs in the refit
worker (pars.learning.worker), a process of its own at the lowest OS priority (SCHED_IDLE, nice 19), started with
the server so that its imports are paid before traffic comes; never on the event loop. Its candidate
replaces the live student only if it ranks the held-back recent slice better by what the slice's size justifies
(pars.learning.guard). The swap is one reference change on the event loop (the candidate is loaded on a thread
first), so no request waits for it. The next `every` exact lengths after a swap are scored by both the new and the
previous scorer; if the previous one ranks them better, it comes back (rollback). A refit that crashes, hangs
(killed after `timeout_s`), returns a non-finite loss, or leaves a candidate that does not load is counted and
logged, and the server keeps serving with the scorer it has; a worker that died is started afresh for the next
refit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from pars.learning.guard import compare, tau
from pars.learning.length_log import LengthLog
from pars.learning.metrics import LearnerMetrics, learner_metrics
from pars.learning.responses import Outcome
from pars.learning.state import LearnDir
from pars.learning.worker import RefitWorker, WorkerDied
from pars.predictor.checkpoint import CheckpointError
from pars.predictor.student import StaticStudent

logger = logging.getLogger("vllm.pars")

LEARN_DIR_ENV = "PARS_LEARN_DIR"
LEARN_EVERY_ENV = "PARS_LEARN_EVERY"
LEARN_STORE_ENV = "PARS_LEARN_STORE"
LEARN_FAULT_ENV = "PARS_LEARN_INJECT_FAULT"  # tests only: sent with each refit request to the worker
DEFAULT_EVERY = 200
REFIT_TIMEOUT_S = 120.0
ROLLING = 200  # exact lengths in the rolling tau
TAU_EVERY = 20  # the rolling tau gauges are recomputed every this many exact lengths (two taus: ~0.5 ms)


class Swappable(Protocol):
    def swap(self, ranker: StaticStudent) -> None: ...


@dataclass(frozen=True)
class LearnSettings:
    every: int = DEFAULT_EVERY
    store: str = "text"
    timeout_s: float = REFIT_TIMEOUT_S
    fault: str | None = None

    @classmethod
    def from_environment(cls, env: dict[str, str] | os._Environ) -> LearnSettings:
        return cls(every=int(env.get(LEARN_EVERY_ENV, DEFAULT_EVERY)), store=env.get(LEARN_STORE_ENV, "text"),
                   fault=env.get(LEARN_FAULT_ENV) or None)


class Learner:
    """Owns the log, the refits and the live scorer's lineage for one API server."""

    def __init__(self, learn: LearnDir, scorer: Swappable, settings: LearnSettings, model: str | None = None,
                 metrics: LearnerMetrics | None = None) -> None:
        self.learn = learn
        self.scorer = scorer
        self.settings = settings
        self.model = model
        self.metrics = metrics or learner_metrics()
        self.live = StaticStudent.load(learn.current)
        self.initial = StaticStudent.load(learn.initial)
        self.previous: StaticStudent | None = None
        self.log = LengthLog(learn.log, settings.store)
        self.since_refit = 0
        self.refitting: asyncio.Task | None = None
        self.worker = RefitWorker(learn.root)
        self.recent: deque[tuple[float, float, int]] = deque(maxlen=ROLLING)  # live, initial, tokens
        self.tracked = 0
        self.watch: list[tuple[float, float, int]] | None = None  # after a swap: new, previous, tokens

    def observe(self, prompt: str, outcome: Outcome, model: str | None = None) -> None:
        """One finished request (on the event loop: microseconds, the refit is started, not awaited)."""
        stored = self.log.prompts == "embeddings"
        features = self.live.features([prompt]) if stored or not outcome.censored else None
        written = self.log.append(prompt, outcome.tokens, model or self.model, censored=outcome.censored,
                                  finish_reason=outcome.finish_reason, prompt_tokens=outcome.prompt_tokens,
                                  features=features[0] if stored else None)
        self.metrics.logged.labels(kind="censored" if outcome.censored else "exact").inc()
        if not written:
            self.metrics.faults.labels(kind="log_write").inc()
            return
        self.metrics.log_bytes.set(self.log.size())
        if not outcome.censored:  # features were computed for it
            self._track(features, outcome.tokens)
        self.since_refit += 1
        if self.since_refit >= self.settings.every and self.refitting is None and self.watch is None:
            self.since_refit = 0
            self.refitting = asyncio.get_running_loop().create_task(self._refit())
            self.refitting.add_done_callback(self._refit_done)

    def _track(self, features: np.ndarray, tokens: int) -> None:
        live = float(self.live.score_features(features)[0])
        self.recent.append((live, float(self.initial.score_features(features)[0]), tokens))
        self.tracked += 1
        if self.tracked % TAU_EVERY == 0:
            scores = np.array(self.recent)
            self.metrics.rolling_tau.labels(scorer="live").set(tau(scores[:, 0], scores[:, 2]))
            self.metrics.rolling_tau.labels(scorer="initial").set(tau(scores[:, 1], scores[:, 2]))
        if self.watch is not None and self.previous is not None:
            self.watch.append((live, float(self.previous.score_features(features)[0]), tokens))
            if len(self.watch) >= self.settings.every:
                self._judge_swap()

    def _judge_swap(self) -> None:
        window = np.array(self.watch)
        verdict = compare(window[:, 0], window[:, 1], window[:, 2])  # is the previous scorer better?
        self.watch = None
        if not verdict.better:
            self.learn.record("kept", tau_new=verdict.tau_live, tau_previous=verdict.tau_candidate, n=verdict.n)
            return
        self.learn.roll_back()
        self.live, self.previous = self.previous, None
        self.scorer.swap(self.live)
        self.metrics.rollbacks.inc()
        self.learn.record("rollback", tau_new=verdict.tau_live, tau_previous=verdict.tau_candidate, n=verdict.n)
        logger.warning("PARS learner: rolled back a swap (tau %.3f after it, %.3f before, %d requests)",
                       verdict.tau_live, verdict.tau_candidate, verdict.n)

    async def _refit(self) -> None:
        try:
            report = await asyncio.to_thread(self.worker.ask, self.settings.fault, self.settings.timeout_s)
        except TimeoutError as err:
            return self._refit_failed("timeout", str(err))
        except WorkerDied as err:
            return self._refit_failed("crashed", str(err))
        if "error" in report:
            return self._refit_failed("failed", report["error"])
        self.metrics.refits.labels(outcome="done").inc()
        self.metrics.refit_seconds.observe(report["seconds"])
        if not report["better"]:
            self.metrics.swaps.labels(outcome="rejected").inc()
            self.learn.record("rejected", **report)
            return None
        try:
            candidate = await asyncio.to_thread(self._load_and_promote)
        except CheckpointError as error:
            self.metrics.swaps.labels(outcome="load_failed").inc()
            self.learn.record("load_failed", error=str(error))
            logger.warning("PARS learner: the refitted scorer does not load (%s); serving goes on with the live one",
                           error)
            return None
        on_loop = time.perf_counter()
        self.previous, self.live = self.live, candidate
        self.scorer.swap(candidate)
        self.watch = []
        swap_ms = 1000 * (time.perf_counter() - on_loop)
        self.metrics.swaps.labels(outcome="swapped").inc()
        self.learn.record("swap", swap_ms_on_event_loop=swap_ms, **report)
        logger.info("PARS learner: swapped in a refit (tau %.3f -> %.3f on %d recent requests; %.3f ms on the "
                    "event loop)", report["tau_live"], report["tau_candidate"], report["slice"], swap_ms)
        return None

    def _load_and_promote(self) -> StaticStudent:
        """Off the event loop: load the candidate (CheckpointError if it is broken), then make it DIR/current."""
        candidate = StaticStudent.load(self.learn.candidate)
        self.learn.promote()
        return candidate

    def _refit_failed(self, outcome: str, why: str) -> None:
        self.metrics.refits.labels(outcome=outcome).inc()
        self.learn.record("refit_" + outcome, why=why)
        logger.warning("PARS learner: a refit %s (%s); serving goes on with the live scorer", outcome, why)

    def _refit_done(self, task: asyncio.Task) -> None:
        self.refitting = None
        if not task.cancelled() and task.exception() is not None:
            self._refit_failed("crashed", repr(task.exception()))

    @classmethod
    def from_environment(cls, scorer: Swappable, env: dict[str, str] | os._Environ = os.environ) -> Learner | None:
        root = env.get(LEARN_DIR_ENV)
        if not root:
            return None
        return cls(LearnDir(Path(root)), scorer, LearnSettings.from_environment(env))
