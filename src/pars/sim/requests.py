"""A request as the simulator sees it (token counts and a queue size), and the sizes each policy gives it.

Sizes are the keys `pars.scheduling.RankedQueue` orders by (lowest first), computed as the real
scheduler classes compute them, so the simulated queue order is the served one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pars.scheduling import OracleSizes, RequestView

FCFS_SIZE = 0.0  # every request the same size: the aged key ties, and the queue orders by arrival
_ORACLE = OracleSizes()


@dataclass(frozen=True)
class SimRequest:
    """One request: `size` is its queue key (FCFS_SIZE, a ranker score, `oracle_size(output_tokens)`);
    None puts it in the queue's pending tier (ordered by arrival after every sized request), which is
    FCFS when no request has a size."""

    index: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    size: float | None = FCFS_SIZE

    def __post_init__(self) -> None:
        if not math.isfinite(self.arrival_s):
            raise ValueError(f"request {self.index}: arrival_s must be finite, got {self.arrival_s}")
        if self.prompt_tokens < 1 or self.output_tokens < 1:
            raise ValueError(f"request {self.index}: prompt and output need at least one token each, got "
                             f"{self.prompt_tokens} and {self.output_tokens}")
        if self.size is not None and not math.isfinite(self.size):
            raise ValueError(f"request {self.index}: size must be finite or None, got {self.size}")


def oracle_size(output_tokens: int) -> float:
    """The oracle scheduler's key for a request of this true length (`OracleSizes`: log2(1 + tokens))."""
    verdict = _ORACLE.on_arrival(RequestView(request_id="", prompt_token_ids=(), true_length=output_tokens))
    if verdict.size is None:
        raise ValueError(f"no oracle size for output length {output_tokens!r} ({verdict.fallback_reason})")
    return verdict.size
