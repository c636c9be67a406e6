"""How long an answer was, read from the OpenAI-style response vLLM sends back (pure: bytes in, numbers out).

Non-streamed: the JSON body's `usage.completion_tokens` and `choices[0].finish_reason`. Streamed: vLLM sends
usage only when asked, so the learner asks (`stream_options.include_usage`, see `ask_for_usage`) and removes
the usage event it asked for before the client sees it: the client gets the stream it would have got. A stream
that ends without usage (client gone, server error) still proves a lower bound: each event that carried text
carried at least one token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_BODY_BYTES = 4 << 20  # a non-streamed answer longer than this is not parsed (not logged)
EXACT_FINISH = "stop"  # the response ended by itself; anything else ("length", "abort", ...) is censored


@dataclass(frozen=True)
class Outcome:
    """The length a response proves: exact when it stopped by itself, else at least `tokens`."""

    tokens: int
    finish_reason: str
    prompt_tokens: int | None

    @property
    def censored(self) -> bool:
        return self.finish_reason != EXACT_FINISH


def ask_for_usage(body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The body with usage requested for a stream, and whether PARS added the request (so must hide the answer)."""
    if not body.get("stream"):
        return body, False
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        return body, False
    if options is not None and not isinstance(options, dict):
        return body, False  # vLLM answers a malformed stream_options itself
    return {**body, "stream_options": {**(options or {}), "include_usage": True}}, True


class ResponseWatcher:
    """Fed each body chunk of one response (`feed` returns the bytes to forward); `outcome()` at the end."""

    def __init__(self, streaming: bool, hide_usage: bool) -> None:
        self.streaming = streaming
        self.hide_usage = hide_usage
        self.body = bytearray()
        self.pending = b""
        self.text_events = 0
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.choices = 0

    def feed(self, chunk: bytes) -> bytes:
        if not self.streaming:
            if len(self.body) + len(chunk) <= MAX_BODY_BYTES:
                self.body += chunk
            else:
                self.body = bytearray(b"x")  # too long to parse: never a wrong number
            return chunk
        events = (self.pending + chunk).split(b"\n\n")
        self.pending = events.pop()
        forwarded = [event for event in events if self._keep_event(event)]
        return b"".join(event + b"\n\n" for event in forwarded)

    def flush(self) -> bytes:
        """What is left of a stream that ended without a final blank line."""
        rest, self.pending = self.pending, b""
        return rest if not rest or self._keep_event(rest) else b""

    def outcome(self) -> Outcome | None:
        """The proven length, or None where the response proves nothing (errors, several choices, no text)."""
        if not self.streaming:
            self._read_body()
        if self.choices > 1:
            return None
        usage = self.usage or {}
        tokens, prompt_tokens = usage.get("completion_tokens"), usage.get("prompt_tokens")
        prompt_tokens = prompt_tokens if isinstance(prompt_tokens, int) else None
        if isinstance(tokens, int) and self.finish_reason:
            return Outcome(tokens, self.finish_reason, prompt_tokens)
        if self.streaming and self.text_events:
            return Outcome(self.text_events, self.finish_reason or "incomplete", prompt_tokens)
        return None

    def _keep_event(self, event: bytes) -> bool:
        """Read one SSE event; False for the usage event PARS asked for."""
        data = event.strip()
        if not data.startswith(b"data:"):
            return True
        try:
            message = json.loads(data[5:])
        except ValueError:
            return True  # "[DONE]" and anything else that is not JSON
        if not isinstance(message, dict):
            return True
        choices = message.get("choices")
        if isinstance(choices, list):
            self._read_choices(choices, streamed=True)
        if isinstance(message.get("usage"), dict):
            self.usage = message["usage"]
            return not (self.hide_usage and not choices)
        return True

    def _read_choices(self, choices: list[Any], streamed: bool) -> None:
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            self.choices = max(self.choices, int(choice.get("index", 0) or 0) + 1)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
            delta = choice.get("delta") if streamed else None
            text = (delta or {}).get("content") if isinstance(delta, dict) else choice.get("text")
            if streamed and text:
                self.text_events += 1

    def _read_body(self) -> None:
        try:
            message = json.loads(bytes(self.body))
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        if isinstance(message.get("choices"), list):
            self._read_choices(message["choices"], streamed=False)
        if isinstance(message.get("usage"), dict):
            self.usage = message["usage"]
