"""Size sources: oracle and predicted verdicts, including every fallback reason."""

import math

import pytest

from pars.scheduling import OracleSizes, PredictedSizes, RequestView


def view(rid="r", tokens=(5, 6, 7), true_length=None) -> RequestView:
    return RequestView(rid, list(tokens), true_length)


@pytest.mark.parametrize("length", [0, 7, 2048, "300"])
def test_oracle_size_grows_with_true_length(length):
    assert OracleSizes().on_arrival(view(true_length=length)).size == pytest.approx(math.log2(1 + float(length)))


@pytest.mark.parametrize("length", [None, "many", -3, True, math.inf])
def test_oracle_without_a_valid_length_falls_back(length):
    verdict = OracleSizes().on_arrival(view(true_length=length))
    assert verdict.size is None and verdict.fallback_reason == "missing_true_length"


def collect_all(policy, expected: int, wait_s: float = 5.0) -> dict:
    got = {}
    for _ in range(50):
        for verdict in policy.collect(wait_s):
            assert verdict.request_id not in got, "a request got two verdicts"
            got[verdict.request_id] = verdict
        if len(got) >= expected:
            break
    return got


def decode(token_ids):
    if any(t >= 1000 for t in token_ids):
        raise ValueError("unknown id")
    return " ".join(f"w{t}" for t in token_ids if t > 0)


def test_predicted_scores_decoded_prompts_in_batches():
    batches = []

    def score(prompts):
        batches.append(list(prompts))
        return [float(len(p)) for p in prompts]

    policy = PredictedSizes(score, decode, max_batch=32)
    try:
        for i in range(40):
            assert policy.on_arrival(view(f"r{i}", tokens=range(1, i + 2))) is None
        got = collect_all(policy, 40)
    finally:
        policy.close()
    assert sorted(got) == sorted(f"r{i}" for i in range(40))
    assert got["r3"].size == len(decode(range(1, 5)))
    assert sum(len(b) for b in batches) == 40 and max(len(b) for b in batches) <= 32
    assert len(batches) < 40  # batched, not one by one


def test_predicted_falls_back_on_prompts_it_cannot_handle():
    policy = PredictedSizes(lambda prompts: [1.0] * len(prompts), decode, max_prompt_tokens=10)
    try:
        assert policy.on_arrival(view("empty", tokens=())).fallback_reason == "empty_prompt"
        assert policy.on_arrival(view("huge", tokens=range(1, 20))).fallback_reason == "prompt_too_long"
        policy.on_arrival(view("bad_ids", tokens=(1, 5000)))
        policy.on_arrival(view("blank_text", tokens=(0, 0)))
        policy.on_arrival(view("fine", tokens=(1, 2)))
        got = collect_all(policy, 3)
    finally:
        policy.close()
    assert got["bad_ids"].fallback_reason == "undecodable"
    assert got["blank_text"].fallback_reason == "empty_prompt"
    assert got["fine"].size == 1.0


def test_predicted_falls_back_when_the_predictor_raises_or_returns_nonsense():
    def score(prompts):
        if any("w9" in p for p in prompts):
            raise RuntimeError("injected predictor fault")
        return [math.nan] * len(prompts)

    policy = PredictedSizes(score, decode)
    try:
        policy.on_arrival(view("raises", tokens=(9,)))
        assert {v.fallback_reason for v in collect_all(policy, 1).values()} == {"predictor_error"}
        policy.on_arrival(view("nan", tokens=(1,)))
        assert collect_all(policy, 1)["nan"].fallback_reason == "predictor_error"
    finally:
        policy.close()


def test_predicted_uses_the_front_end_score_and_never_scores_in_the_engine():
    scored = []
    policy = PredictedSizes(lambda prompts: scored.extend(prompts) or [1.0] * len(prompts), decode)
    try:
        assert policy.on_arrival(RequestView("a", [1, 2], front_end_score=2.5)).size == 2.5
        assert policy.on_arrival(RequestView("b", [1, 2], front_end_score="-0.5")).size == -0.5
        assert policy.on_arrival(RequestView("c", [1], front_end_score="nan")).fallback_reason == "invalid_front_end_score"
        assert policy.on_arrival(RequestView("d", [1], front_end_fallback="timeout")).fallback_reason == "front_end_timeout"
        assert not policy.has_pending()
    finally:
        policy.close()
    assert scored == []


def test_a_forgotten_request_gets_no_verdict_and_is_not_scored_if_its_batch_has_not_started():
    import threading

    gate, scored = threading.Event(), []

    def score(prompts):
        gate.wait(5)
        scored.extend(prompts)
        return [1.0] * len(prompts)

    policy = PredictedSizes(score, decode)
    try:
        policy.on_arrival(view("running", tokens=(1,)))
        import time

        time.sleep(0.05)
        policy.on_arrival(view("aborted", tokens=(2,)))
        policy.forget("aborted")
        gate.set()
        got = collect_all(policy, 1)
    finally:
        policy.close()
    assert set(got) == {"running"} and "w2" not in scored


def test_a_fallback_score_later_than_the_timeout_falls_back_and_its_queued_item_is_never_scored():
    import threading

    gate, scored, now = threading.Event(), [], [0.0]

    def hung(prompts):  # an intentionally hung predictor (injected fault)
        gate.wait(5)
        scored.extend(prompts)
        return [1.0] * len(prompts)

    policy = PredictedSizes(hung, decode, max_batch=1, timeout_s=5.0, clock=lambda: now[0])
    try:
        policy.on_arrival(view("running", tokens=(1,)))
        import time

        time.sleep(0.05)  # "running" is in the hung batch; "queued" waits behind it
        policy.on_arrival(view("queued", tokens=(2,)))
        now[0] = 4.9
        assert policy.collect(0.0) == [] and policy.has_pending()
        now[0] = 5.1
        verdicts = {v.request_id: v.fallback_reason for v in policy.collect(0.0)}
        assert verdicts == {"running": "timeout", "queued": "timeout"} and not policy.has_pending()
        gate.set()
        time.sleep(0.05)
        assert policy.collect(0.0) == [], "a late score produced a second verdict"
    finally:
        policy.close()
    assert scored == ["w1"] and policy.batcher.abandoned == 1
