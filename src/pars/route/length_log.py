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


def completion_tokens(raw: bytes) -> int | None:
    """The completion tokens of an OpenAI-style (non-streamed) answer, from its `usage`."""
    try:
        usage = json.loads(raw).get("usage") or {}
    except (ValueError, AttributeError):
        return None
    tokens = usage.get("completion_tokens")
    return tokens if isinstance(tokens, int) else None


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
