"""`pars collect`: measure the response lengths of any OpenAI-compatible endpoint, offline, into a length log.

Each prompt is sent once as a chat request (`/v1/chat/completions`, not streamed, temperature 0 unless
given) and its `usage.completion_tokens` is appended to the log (pars.learning.length_log), in completion order:
exact when the answer stopped by itself, censored (at least N) when `max_tokens` cut it.
A request that fails is counted and left out; nothing is retried, so nothing is measured twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from pars.data.loaders import DataError
from pars.learning.length_log import LengthLog
from pars.learning.responses import Outcome, ResponseWatcher


@dataclass
class CollectResult:
    written: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # reason (HTTP status or error kind) -> count


def read_prompts(path: Path) -> list[str]:
    """Prompts from a .jsonl file (each line's "prompt") or a text file (one prompt per non-blank line)."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read prompts ({err})") from None
    if path.suffix != ".jsonl":
        return [line for line in lines if line.strip()]
    prompts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            prompt = json.loads(line)["prompt"]
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(f"{path}:{number}: not a JSON object with a \"prompt\" ({err})") from None
        if not isinstance(prompt, str):
            raise DataError(f"{path}:{number}: \"prompt\" must be a string")
        prompts.append(prompt)
    return prompts


def answer_length(raw: bytes) -> Outcome | None:
    watcher = ResponseWatcher(streaming=False, hide_usage=False)
    watcher.feed(raw)
    return watcher.outcome()


async def collect(endpoint: str, model: str, prompts: Sequence[str], log: LengthLog, concurrency: int = 8,
                  max_tokens: int | None = None, api_key: str | None = None, timeout_s: float = 600.0,
                  on_done: Callable[[], None] | None = None) -> CollectResult:
    result = CollectResult()
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def failed(reason: str) -> None:
        result.failed[reason] = result.failed.get(reason, 0) + 1

    async with httpx.AsyncClient(base_url=endpoint.rstrip("/"), headers=headers, timeout=timeout_s) as client:
        async def one(prompt: str) -> None:
            body = {"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0.0,
                    **({"max_tokens": max_tokens} if max_tokens else {})}
            async with gate:
                try:
                    response = await client.post("/v1/chat/completions", json=body)
                except httpx.HTTPError as err:
                    failed(type(err).__name__)
                else:
                    outcome = answer_length(response.content) if response.status_code == 200 else None
                    if outcome is None:
                        failed(f"HTTP {response.status_code}" if response.status_code != 200 else "no usage")
                    else:
                        log.append(prompt, outcome.tokens, model, censored=outcome.censored,
                                   finish_reason=outcome.finish_reason, prompt_tokens=outcome.prompt_tokens)
                        result.written += 1
            if on_done:
                on_done()

        await asyncio.gather(*(one(p) for p in prompts))
    return result
