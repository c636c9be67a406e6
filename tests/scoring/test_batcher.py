"""ScoringBatcher: micro-batches, one result per item, abandoned items never scored, faults fall back."""

import math
import threading
import time

from pars.scoring.batcher import ScoreResult, ScoringBatcher


def test_items_submitted_while_a_batch_runs_form_the_next_batch():
    batches, gate = [], threading.Event()

    def score(texts):
        gate.wait(5)
        batches.append(list(texts))
        return [float(len(t)) for t in texts]

    batcher = ScoringBatcher(score, max_batch=8)
    try:
        first = batcher.submit("a")
        time.sleep(0.05)  # the worker has taken "a" and waits at the gate
        rest = [batcher.submit("x" * i) for i in range(1, 11)]
        gate.set()
        assert first.result(5) == ScoreResult(1.0)
        assert [f.result(5).score for f in rest] == [float(i) for i in range(1, 11)]
    finally:
        batcher.close()
    assert [len(b) for b in batches] == [1, 8, 2]


def test_a_cancelled_item_is_never_scored():
    seen, gate = [], threading.Event()

    def score(texts):
        gate.wait(5)
        seen.extend(texts)
        return [1.0] * len(texts)

    batcher = ScoringBatcher(score)
    try:
        batcher.submit("running")
        time.sleep(0.05)
        abandoned = batcher.submit("abandoned")
        kept = batcher.submit("kept")
        assert abandoned.cancel()
        gate.set()
        assert kept.result(5).score == 1.0
    finally:
        batcher.close()
    assert "abandoned" not in seen and batcher.abandoned == 1


def test_predictor_faults_and_bad_items_fall_back_with_a_reason():
    def score(texts):
        if "boom" in texts:
            raise RuntimeError("injected predictor fault")
        return [math.nan if t == "nan" else 1.0 for t in texts]

    def to_text(item):
        if item == "undecodable":
            raise ValueError("injected decoding fault")
        return item

    batcher = ScoringBatcher(score, to_text)
    try:
        assert batcher.submit("boom").result(5) == ScoreResult(None, "predictor_error")
        assert batcher.submit("nan").result(5) == ScoreResult(None, "predictor_error")
        assert batcher.submit("undecodable").result(5) == ScoreResult(None, "undecodable")
        assert batcher.submit("  ").result(5) == ScoreResult(None, "empty_prompt")
        assert batcher.submit("fine").result(5) == ScoreResult(1.0)
    finally:
        batcher.close()
    assert batcher.submit("late").result(1) == ScoreResult(None, "scorer_closed")


def test_a_full_todo_list_falls_back_at_once_instead_of_queueing_work_nobody_waits_for():
    gate = threading.Event()
    batcher = ScoringBatcher(lambda texts: (gate.wait(5), [1.0] * len(texts))[1], max_batch=1, max_queued=2)
    try:
        running = batcher.submit("running")
        time.sleep(0.05)
        queued = [batcher.submit("q1"), batcher.submit("q2")]
        overflow = batcher.submit("q3")
        assert overflow.done() and overflow.result() == ScoreResult(None, "scorer_overloaded")
        gate.set()
        assert [f.result(5).score for f in [running, *queued]] == [1.0, 1.0, 1.0]
    finally:
        batcher.close()


class InjectedWorkerDeath(BaseException):
    """A fault injected on purpose: escapes the predictor's `except Exception` and kills the worker thread."""


def test_a_dead_worker_resolves_its_batch_and_is_restarted():
    def score(texts):
        if "kill" in texts:
            raise InjectedWorkerDeath
        return [1.0] * len(texts)

    batcher = ScoringBatcher(score, max_batch=1)
    try:
        assert batcher.submit("kill").result(5) == ScoreResult(None, "scorer_crashed")
        assert batcher.submit("fine").result(5) == ScoreResult(1.0)
        assert batcher.restarts == 1 and batcher.is_alive()
    finally:
        batcher.close()


def test_a_worker_that_keeps_dying_gives_up_and_everything_falls_back_with_its_own_reason():
    from pars.scoring.batcher import MAX_RESTARTS

    def score(texts):
        raise InjectedWorkerDeath

    batcher = ScoringBatcher(score, max_batch=1)
    results = [batcher.submit(f"p{i}").result(5) for i in range(MAX_RESTARTS + 1)]
    assert results == [ScoreResult(None, "scorer_crashed")] * (MAX_RESTARTS + 1)
    assert batcher.submit("later").result(1) == ScoreResult(None, "scorer_dead")
    batcher.close()


def test_close_returns_within_its_bound_while_a_slow_batch_runs_and_nothing_is_left_unresolved():
    release = threading.Event()
    batcher = ScoringBatcher(lambda texts: (release.wait(10), [1.0] * len(texts))[1], max_batch=1)
    running = batcher.submit("slow")
    time.sleep(0.05)
    queued = batcher.submit("queued")
    started = time.monotonic()
    batcher.close(timeout_s=0.2)
    assert time.monotonic() - started < 1.0
    assert running.result(0) == ScoreResult(None, "scorer_closed")
    assert queued.result(0) == ScoreResult(None, "scorer_closed")
    release.set()  # the late batch finishes without raising on its already-resolved future
    time.sleep(0.05)
    assert running.result(0) == ScoreResult(None, "scorer_closed")


def test_the_worker_thread_runs_nicer_than_the_thread_that_started_it():
    import os

    batcher = ScoringBatcher(lambda texts: [1.0] * len(texts), nice=5)
    try:
        assert batcher.submit("x").result(5).score == 1.0
        mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert os.getpriority(os.PRIO_PROCESS, batcher.worker_id) == min(19, mine + 5)
    finally:
        batcher.close()
