"""BatchScorer: the engine never waits past its budget, and a slow predictor times out once."""

import threading
import time

from pars.scheduling.batch_scorer import BatchScorer


def test_collect_returns_within_budget_while_the_predictor_is_slow_then_times_out_once():
    release = threading.Event()

    def slow_score(prompts):
        release.wait(10)  # an intentionally hung predictor (injected fault)
        return [1.0] * len(prompts)

    scorer = BatchScorer(slow_score, lambda ids: "text", timeout_s=0.3)
    try:
        scorer.submit("r1", [1])
        start = time.monotonic()
        assert scorer.collect(wait_s=0.05) == []
        assert time.monotonic() - start < 0.25
        time.sleep(0.35)
        results = scorer.collect(wait_s=0.0)
        assert [(r.request_id, r.reason) for r in results] == [("r1", "timeout")]
        release.set()
        time.sleep(0.2)
        assert scorer.collect(wait_s=0.1) == []  # the late score is dropped: one result per request
        assert not scorer.has_pending()
    finally:
        release.set()
        scorer.close()


def test_collect_waits_for_a_result_that_arrives_within_the_budget():
    scorer = BatchScorer(lambda prompts: [2.0] * len(prompts), lambda ids: "text")
    try:
        scorer.submit("r1", [1])
        results = scorer.collect(wait_s=2.0)
        assert [(r.request_id, r.size) for r in results] == [("r1", 2.0)]
        assert scorer.prompts_scored == 1
    finally:
        scorer.close()
