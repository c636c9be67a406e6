"""The length log: one JSON line per finished request, `{"prompt", "response_tokens", "model", "ts"}`.

Valid input to `pars train --data` and `--init-from` (the served model's own lengths). Each line is written
with one `write` on a file opened for appending, so concurrent writers never interleave within a line; a
line torn by a crash is skipped when the log is read (`pars.data.loaders.load_jsonl`). With `hash_prompts`
the prompt is replaced by its SHA-256 (privacy: such a log counts lengths but cannot train a ranker).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

PROMPT_MODES = ("text", "hash")


def completion_tokens(raw: bytes, streamed: bool) -> int | None:
    """The completion tokens of an OpenAI-style answer: its `usage`, or for a stream without a usage chunk the
    number of chunks that carried text, an approximation (vLLM sends one token per chunk by default, but a
    token that decodes to no text yet is missed; ask for `stream_options.include_usage` for exact counts)."""
    if not streamed:
        try:
            usage = json.loads(raw).get("usage") or {}
        except (ValueError, AttributeError):
            return None
        tokens = usage.get("completion_tokens")
        return tokens if isinstance(tokens, int) else None
    usage_tokens, text_chunks = None, 0
    for line in raw.decode("utf-8", errors="replace").splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        try:
            chunk = json.loads(line[len("data: "):])
        except ValueError:
            continue
        if chunk.get("usage"):
            usage_tokens = chunk["usage"].get("completion_tokens")
        for choice in chunk.get("choices") or []:
            if choice.get("text") or (choice.get("delta") or {}).get("content"):
                text_chunks += 1
    return usage_tokens if isinstance(usage_tokens, int) else (text_chunks or None)


class LengthLog:
    """Appends length lines to `path` (created with its parent directories)."""

    def __init__(self, path: str | Path, prompts: str = "text") -> None:
        if prompts not in PROMPT_MODES:
            raise ValueError(f"prompt mode {prompts!r}: choose one of {', '.join(PROMPT_MODES)}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.prompts = prompts
        self.written = 0

    def append(self, prompt: str, response_tokens: int, model: str | None) -> None:
        text = hashlib.sha256(prompt.encode()).hexdigest() if self.prompts == "hash" else prompt
        line = json.dumps({"prompt": text, "response_tokens": response_tokens, "model": model or "unknown",
                           "ts": round(time.time(), 3)}, ensure_ascii=False) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        self.written += 1
