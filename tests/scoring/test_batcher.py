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
