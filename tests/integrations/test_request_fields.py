"""What the front-end middleware writes into a request body, and the score -> priority map."""

from pars.integrations.vllm.middleware import annotate
from pars.scheduling.request_fields import FALLBACK_KEY, SCORE_KEY, priority_of
from pars.scheduling import NeutralSize
from pars.scoring import ScoreResult


def test_priority_is_monotone_in_the_score_and_bounded():
    scores = [-3.2, -0.0004, 0.0, 0.7, 1.25, 9.9]
    priorities = [priority_of(s) for s in scores]
    assert priorities == sorted(priorities) and priorities[0] < priorities[-1]
    assert priority_of(1e12) == 2**31 - 1 and priority_of(-1e12) == -(2**31 - 1)


def test_pars_mode_adds_the_score_and_keeps_the_users_fields():
    body = {"prompt": "hi", "vllm_xargs": {"mine": 1}, "max_tokens": 5}
    out = annotate(body, ScoreResult(1.5), "pars", NeutralSize(), "r")
    assert out["vllm_xargs"] == {"mine": 1, SCORE_KEY: 1.5} and out["max_tokens"] == 5
    assert "priority" not in out and body["vllm_xargs"] == {"mine": 1}, "the caller's body was changed"


def test_a_fallback_is_marked_so_the_engine_does_not_score_it_again_but_unreadable_text_is_left_to_it():
    timed_out = annotate({"prompt": "hi"}, ScoreResult(None, "timeout"), "pars", NeutralSize(), "r")
    assert timed_out["vllm_xargs"] == {FALLBACK_KEY: "timeout"}
    token_ids = annotate({"prompt": [1, 2]}, ScoreResult(None, "token_prompt"), "pars", NeutralSize(), "r")
    assert token_ids["vllm_xargs"] == {}


def test_priority_mode_sets_priority_and_gives_fallbacks_the_held_mean_of_recent_scores():
    neutral = NeutralSize()
    assert annotate({}, ScoreResult(1.0), "priority", neutral, "a")["priority"] == 1000
    assert annotate({}, ScoreResult(3.0), "priority", neutral, "b")["priority"] == 3000
    assert annotate({}, ScoreResult(None, "timeout"), "priority", neutral, "c")["priority"] == 2000
    assert annotate({}, ScoreResult(5.0), "priority", neutral, "d")["priority"] == 5000
    # "c" is still in flight: a second fallback gets the same priority, so vLLM keeps them in arrival order
    assert annotate({}, ScoreResult(None, "timeout"), "priority", neutral, "e")["priority"] == 2000
    neutral.release("c")
    neutral.release("e")
    assert annotate({}, ScoreResult(None, "timeout"), "priority", neutral, "f")["priority"] == 3000
    assert annotate({"priority": -7}, ScoreResult(5.0), "priority", neutral, "g")["priority"] == -7
