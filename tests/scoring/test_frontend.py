"""FrontEndScorer on asyncio: the event loop never runs the predictor, and a slow one times out."""

import asyncio
import threading
import time

import pytest

from pars.scoring import FrontEndScorer
from pars.scoring.text import CHAT_COMPLETIONS, COMPLETIONS


def test_concurrent_requests_share_batches_and_keep_the_event_loop_free():
    batches = []

    def score(texts):
        time.sleep(0.05)  # a predictor that takes real time
        batches.append(len(texts))
        return [float(len(t)) for t in texts]

    async def main():
        scorer = FrontEndScorer(score, timeout_s=5.0)
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        tick_task = asyncio.create_task(ticker())
        bodies = [{"prompt": "p" * (i + 1)} for i in range(20)]
        results = await asyncio.gather(*(scorer.score(COMPLETIONS, b) for b in bodies))
        tick_task.cancel()
        scorer.close()
        return scorer, results, ticks

    scorer, results, ticks = asyncio.run(main())
    assert [r.score for r in results] == [float(i + 1) for i in range(20)]
    assert len(batches) < 20 and sum(batches) == 20
    assert ticks >= 10, "the event loop was blocked while scoring"
    assert scorer.counters.sized == 20


def test_a_hung_predictor_times_out_within_the_bound_and_is_counted():
    release = threading.Event()

    def hung(texts):
        release.wait(10)  # an intentionally hung predictor (injected fault)
        return [1.0] * len(texts)

    async def main():
        scorer = FrontEndScorer(hung, timeout_s=0.2)
        start = time.monotonic()
        first = asyncio.create_task(scorer.score(COMPLETIONS, {"prompt": "q0"}))
        await asyncio.sleep(0.05)  # q0's batch is running (hung); q1 and q2 queue behind it
        results = [await first, *await asyncio.gather(*(scorer.score(COMPLETIONS, {"prompt": f"q{i}"}) for i in (1, 2)))]
        elapsed = time.monotonic() - start
        release.set()
        scorer.close()
        return scorer, results, elapsed

    scorer, results, elapsed = asyncio.run(main())
    assert [r.reason for r in results] == ["timeout"] * 3
    assert elapsed < 1.0
    assert all(0.2 <= r.seconds < 1.0 for r in results), "each result carries the time it took (the timeout)"
    assert scorer.counters.fallback["timeout"] == 3
    assert scorer.batcher.abandoned == 2, "requests that timed out before their batch were still scored"


def test_unreadable_requests_are_counted_without_reaching_the_predictor():
    called = []

    async def main():
        scorer = FrontEndScorer(lambda texts: called.extend(texts) or [1.0] * len(texts))
        result = await scorer.score(CHAT_COMPLETIONS, {"messages": [{"role": "system", "content": "x"}]})
        scorer.close()
        return scorer, result

    scorer, result = asyncio.run(main())
    assert result.reason == "no_user_text" and not called
    assert scorer.counters.fallback["no_user_text"] == 1


def test_a_distilled_student_scores_inline_at_once_with_no_worker_thread(student_dir):
    from pars.predictor import load_ranker
    from pars.scheduling import SchedulerSettings

    async def main():
        scorer = FrontEndScorer.for_checkpoint(student_dir, SchedulerSettings())
        results = await asyncio.gather(*(scorer.score(COMPLETIONS, {"prompt": p}) for p in ("hi there", "write a poem")))
        scorer.close()
        return scorer, results

    scorer, results = asyncio.run(main())
    assert scorer.inline and scorer.batcher is None and scorer.is_alive()
    expected = load_ranker(student_dir).score(["hi there", "write a poem"])
    assert [r.score for r in results] == pytest.approx([float(s) for s in expected], rel=1e-5)
    assert scorer.counters.sized == 2


def test_an_inline_predictor_that_raises_or_returns_nan_falls_back_and_is_counted():
    answers = iter([RuntimeError("boom"), float("nan")])

    def faulty(texts):  # an injected fault: first raises, then returns NaN
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return [answer] * len(texts)

    async def main():
        scorer = FrontEndScorer(faulty, inline=True)
        return scorer, [await scorer.score(COMPLETIONS, {"prompt": "x"}) for _ in range(2)]

    scorer, results = asyncio.run(main())
    assert [r.reason for r in results] == ["predictor_error", "predictor_error"]
    assert scorer.counters.fallback["predictor_error"] == 2
