"""Reading a response's length from the bytes vLLM sends: non-streamed, streamed with usage asked for (and the
usage event hidden from the client), a stream cut short, several choices."""

from __future__ import annotations

import json

from pars.learning.responses import ResponseWatcher, ask_for_usage


def sse(message: dict) -> bytes:
    return f"data: {json.dumps(message)}\n\n".encode()


def stream(finish: str | None, usage: bool) -> list[bytes]:
    events = [sse({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
              sse({"choices": [{"index": 0, "delta": {"content": "Hello"}}]}),
              sse({"choices": [{"index": 0, "delta": {"content": " world"}, "finish_reason": finish}]})]
    if usage:
        events.append(sse({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}))
    return events + [b"data: [DONE]\n\n"]


def test_usage_is_asked_for_only_in_a_stream_that_did_not_ask():
    assert ask_for_usage({"stream": False}) == ({"stream": False}, False)
    asked, added = ask_for_usage({"stream": True, "stream_options": {"continuous_usage_stats": False}})
    assert added and asked["stream_options"] == {"continuous_usage_stats": False, "include_usage": True}
    assert ask_for_usage({"stream": True, "stream_options": {"include_usage": True}})[1] is False
    assert ask_for_usage({"stream": True, "stream_options": "bad"})[1] is False


def test_a_stream_gives_its_exact_length_and_the_client_never_sees_the_usage_it_did_not_ask_for():
    watcher = ResponseWatcher(streaming=True, hide_usage=True)
    joined = b"".join(stream("stop", usage=True))
    forwarded = b"".join(watcher.feed(joined[i:i + 7]) for i in range(0, len(joined), 7)) + watcher.flush()
    assert forwarded == b"".join(stream("stop", usage=False))
    outcome = watcher.outcome()
    assert (outcome.tokens, outcome.finish_reason, outcome.prompt_tokens, outcome.censored) == (3, "stop", 7, False)


def test_a_client_that_asked_for_usage_keeps_it():
    watcher = ResponseWatcher(streaming=True, hide_usage=False)
    events = stream("length", usage=True)
    assert b"".join(watcher.feed(e) for e in events) == b"".join(events)
    assert watcher.outcome().censored  # cut by max_tokens: at least 3


def test_a_stream_cut_short_proves_a_lower_bound():
    watcher = ResponseWatcher(streaming=True, hide_usage=True)
    for event in stream(None, usage=False)[:2]:
        watcher.feed(event)
    outcome = watcher.outcome()
    assert (outcome.tokens, outcome.censored, outcome.finish_reason) == (1, True, "incomplete")


def test_a_plain_answer_and_the_answers_that_prove_nothing():
    body = json.dumps({"choices": [{"index": 0, "message": {"content": "hi"}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 5, "completion_tokens": 2}}).encode()
    watcher = ResponseWatcher(streaming=False, hide_usage=False)
    assert watcher.feed(body[:10]) + watcher.feed(body[10:]) == body
    assert watcher.outcome().tokens == 2
    two = json.dumps({"choices": [{"index": 0, "finish_reason": "stop"}, {"index": 1, "finish_reason": "stop"}],
                      "usage": {"completion_tokens": 9}}).encode()
    several = ResponseWatcher(streaming=False, hide_usage=False)
    several.feed(two)
    assert several.outcome() is None
    error = ResponseWatcher(streaming=False, hide_usage=False)
    error.feed(b'{"error": {"message": "bad"}}')
    assert error.outcome() is None
