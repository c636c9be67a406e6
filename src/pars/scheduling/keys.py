"""How a request's size estimate and its waiting time become one queue key (lowest first).

The rule: at time t a waiting request's key is `size - rate * (t - arrival)`; once it has waited
`max_wait_s` it goes ahead of every request that has not (oldest first). Because every waiting request
ages at the same rate, comparing keys at any t equals comparing `size + rate * arrival`, so keys are
computed once at insertion and a heap stays valid.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class AgingRule:
    """Aging settings: `rate` key units per second of waiting; `max_wait_s` the hard bound (inf = off)."""

    rate: float = 0.0
    max_wait_s: float = math.inf

    def __post_init__(self) -> None:
        if self.rate < 0 or not math.isfinite(self.rate):
            raise ValueError(f"aging rate must be a finite number >= 0, got {self.rate}")
        if not self.max_wait_s > 0:
            raise ValueError(f"max wait must be > 0 seconds, got {self.max_wait_s}")

    def static_key(self, size: float, arrival: float, epoch: float) -> float:
        """The time-independent part of the key; `epoch` keeps the product small for float precision."""
        return size + self.rate * (arrival - epoch)

    def is_overdue(self, arrival: float, now: float) -> bool:
        """True once the request has waited its hard maximum and must go first."""
        return now - arrival >= self.max_wait_s


class NeutralSize:
    """The size given to a request without an estimate: the mean of recent estimates (0 before any).

    Such a request neither jumps the queue nor sinks to its end; while the predictor is down no new
    estimates arrive, the neutral size stays constant, and fallback requests keep arrival order.
    """

    def __init__(self, window: int = 256) -> None:
        self._recent: deque[float] = deque(maxlen=window)

    def observe(self, size: float) -> None:
        self._recent.append(size)

    @property
    def value(self) -> float:
        return sum(self._recent) / len(self._recent) if self._recent else 0.0
