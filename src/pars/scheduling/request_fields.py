"""The request fields PARS reads and writes, in one place (engine-free, so front ends and benchmarks stay light).

`SamplingParams.extra_args` keys (HTTP: `vllm_xargs`): the front end writes SCORE_KEY (the ranker's
score) or FALLBACK_KEY (why it has none, so the engine does not score it again); benchmarks write
TRUE_LENGTH_KEY for the oracle. The priority mode writes vLLM's own integer `priority` instead.
"""

from __future__ import annotations

SCORE_KEY = "pars_score"
FALLBACK_KEY = "pars_fallback"
TRUE_LENGTH_KEY = "pars_true_length"

PRIORITY_SCALE = 1000  # score units -> integer priority steps: 0.001 of a score unit is kept
PRIORITY_LIMIT = 2**31 - 1


def priority_of(score: float) -> int:
    """vLLM priority (lower runs first) for a ranker score (higher = longer): a fixed, monotone map,
    so a request's priority never depends on other traffic; scores within 0.001 tie (then arrival)."""
    return max(-PRIORITY_LIMIT, min(PRIORITY_LIMIT, round(score * PRIORITY_SCALE)))
