"""Counters a scheduler keeps so operators (and tests) can see how requests were ordered."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class SchedulingCounters:
    """`sized`: requests ordered by their own estimate; `fallback`: by reason, ordered by arrival."""

    sized: int = 0
    fallback: Counter[str] = field(default_factory=Counter)

    @property
    def fallback_total(self) -> int:
        return sum(self.fallback.values())

    def summary(self) -> str:
        reasons = ", ".join(f"{reason}={n}" for reason, n in sorted(self.fallback.items()))
        return f"sized={self.sized} fallback={self.fallback_total}" + (f" ({reasons})" if reasons else "")
