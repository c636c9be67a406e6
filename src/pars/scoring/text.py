"""Which text of an OpenAI-style request the ranker reads: what the user wrote, never a template.

The rule (training reads raw user prompts, so serving reads the same kind of text):
- `/v1/completions`: `prompt` when it is one string (or a list holding one string).
- `/v1/chat/completions`: the LAST message whose role is "user"; its `content` is a string or a list
  of parts, whose "text" parts are joined with newlines (images and other parts are ignored). System
  prompts, earlier turns and the chat template are not read: a system prompt shared by every request
  would otherwise fill the encoder's 128 tokens and make every request look the same.
Requests this rule cannot read raise `UnreadableRequest` with a reason; the engine then scores the
decoded prompt itself (token-id prompts, several prompts in one request) or keeps arrival order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

COMPLETIONS = "/v1/completions"
CHAT_COMPLETIONS = "/v1/chat/completions"
ENDPOINTS = (COMPLETIONS, CHAT_COMPLETIONS)


# Unreadable here, but the engine can still score the prompt it decodes (one request per prompt).
ENGINE_READABLE = ("several_prompts", "token_prompt", "no_user_text")


class UnreadableRequest(ValueError):
    """The request carries no user text the ranker can read; `reason` names why (a counter label)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def user_text(endpoint: str, body: Mapping[str, Any]) -> str:
    """The text to score for a request body sent to `endpoint` (one of ENDPOINTS)."""
    if endpoint == COMPLETIONS:
        return _completion_text(body.get("prompt"))
    if endpoint == CHAT_COMPLETIONS:
        return _chat_text(body.get("messages"))
    raise ValueError(f"no scoring rule for endpoint {endpoint!r}; known: {ENDPOINTS}")


def _completion_text(prompt: object) -> str:
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return _non_blank(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        raise UnreadableRequest("several_prompts")
    raise UnreadableRequest("token_prompt" if isinstance(prompt, list) else "no_user_text")


def _chat_text(messages: object) -> str:
    if not isinstance(messages, list):
        raise UnreadableRequest("no_user_text")
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return _non_blank(_content_text(message.get("content")))
    raise UnreadableRequest("no_user_text")


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part["text"] for part in content
                         if isinstance(part, Mapping) and part.get("type", "text") == "text"
                         and isinstance(part.get("text"), str))
    return ""


def _non_blank(text: str) -> str:
    if not text.strip():
        raise UnreadableRequest("empty_prompt")
    return text
