"""The one record type every loader produces: a prompt and the length of one model's response to it."""

from __future__ import annotations

from dataclasses import dataclass


CENSORED_KEY = "response_tokens_at_least"  # a length log's lower bound (a cut response): never a label
MAX_RESPONSE_TOKENS = 2**63 - 1  # lengths become int64 / float64 arrays downstream


class DataError(ValueError):
    """A data file is missing or malformed; the message names the file and line."""


@dataclass(frozen=True)
class LengthRecord:
    prompt: str
    response_tokens: int
    model: str = "unknown"
    source: str = "user"
    prompt_id: str = ""
