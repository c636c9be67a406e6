"""Pure logic of the router: a request's priority from its score, its predicted work, and the replica it goes to.

Priority: vLLM's `--scheduling-policy priority` serves lower integers first. A ranker score has no fixed
scale, so the router maps it to its rank: priority = round(1000 * the share of scores below it), 0..1000.
The share comes from the checkpoint's score quantiles on held-out prompts when it recorded them
(`AnchoredRank`: right from the first request, the same for every replica and restart), else from the last
`window` scores seen (`RankWindow`, which needs traffic to warm up).

Predicted work: the same rank share q mapped onto a log-uniform range of output lengths, 16 * 256**q tokens
(16 to 4,096). A rough prior: only its order matters to the balancer, which sends a request to the healthy
replica with the least predicted work in flight.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

PRIORITY_SCALE = 1000
NEUTRAL_SHARE = 0.5  # a request without a score: the middle of recent traffic
BALANCERS = ("least-work", "least-requests", "round-robin", "power-of-two")


class RankWindow:
    """The share of the last `size` scores that lie below a score (0.5 before any)."""

    def __init__(self, size: int = 1024) -> None:
        self._recent: deque[float] = deque(maxlen=size)
        self._sorted: list[float] = []

    def share_below(self, score: float) -> float:
        if not self._sorted:
            return NEUTRAL_SHARE
        below = bisect.bisect_left(self._sorted, score)
        ties = bisect.bisect_right(self._sorted, score) - below
        return (below + ties / 2) / len(self._sorted)

    def observe(self, score: float) -> None:
        if len(self._recent) == self._recent.maxlen:
            del self._sorted[bisect.bisect_left(self._sorted, self._recent[0])]
        self._recent.append(score)
        bisect.insort(self._sorted, score)


class AnchoredRank:
    """The share of held-out prompts whose score lies below a score, from the checkpoint's score quantiles."""

    def __init__(self, quantiles: Sequence[float]) -> None:
        if len(quantiles) < 2 or any(b < a for a, b in zip(quantiles, quantiles[1:])):
            raise ValueError("score quantiles must be at least two non-decreasing values")
        self.quantiles = list(quantiles)
        self.grid = [i / (len(quantiles) - 1) for i in range(len(quantiles))]

    def share_below(self, score: float) -> float:
        """Interpolated between quantiles; a score equal to some of them sits in the middle of those."""
        low, high = bisect.bisect_left(self.quantiles, score), bisect.bisect_right(self.quantiles, score)
        if low < high:
            return (self.grid[low] + self.grid[high - 1]) / 2
        if low == 0:
            return 0.0
        if low == len(self.quantiles):
            return 1.0
        below, above = self.quantiles[low - 1], self.quantiles[low]
        return self.grid[low - 1] + (score - below) / (above - below) * (self.grid[low] - self.grid[low - 1])

    def observe(self, score: float) -> None:
        """Nothing to learn: the anchor is fixed."""


def priority_of_share(share: float) -> int:
    return round(PRIORITY_SCALE * share)


def predicted_tokens(share: float) -> float:
    return 16.0 * 256.0 ** share


NEUTRAL_WORK = predicted_tokens(NEUTRAL_SHARE)  # a request the router has no estimate for


@dataclass
class Replica:
    """One upstream vLLM server and what the router has in flight there."""

    url: str
    healthy: bool = True
    in_flight: int = 0
    work: float = 0.0  # predicted tokens of the requests in flight
    sent: int = 0

    def dispatch(self, work: float) -> None:
        """A request of `work` predicted tokens was sent here."""
        self.in_flight, self.work, self.sent = self.in_flight + 1, self.work + work, self.sent + 1

    def release(self, work: float) -> None:
        """A request sent here ended (answered, failed, abandoned or never connected)."""
        self.in_flight, self.work = self.in_flight - 1, max(0.0, self.work - work)


@dataclass
class Balancer:
    """Chooses a healthy replica by `policy` (one of BALANCERS); None when none is healthy.

    power-of-two is vllm-router's and llm-d's cheap default: two replicas drawn at random, the one with fewer
    requests in flight (seeded, so a simulation replays)."""

    replicas: list[Replica]
    policy: str = "least-work"
    seed: int = 0
    _turn: itertools.count = field(default_factory=itertools.count)
    _random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        if self.policy not in BALANCERS:
            raise ValueError(f"unknown balancer {self.policy!r}; choose one of {', '.join(BALANCERS)}")
        if not self.replicas:
            raise ValueError("the router needs at least one upstream")
        self._random = random.Random(self.seed)

    def choose(self, exclude: set[str] = frozenset()) -> Replica | None:
        healthy = [r for r in self.replicas if r.healthy and r.url not in exclude]
        if not healthy:
            return None
        if self.policy == "round-robin":
            return healthy[next(self._turn) % len(healthy)]
        if self.policy == "least-requests":
            return min(healthy, key=lambda r: (r.in_flight, r.sent))
        if self.policy == "power-of-two":
            drawn = self._random.sample(healthy, min(2, len(healthy)))
            return min(drawn, key=lambda r: r.in_flight)
        return min(healthy, key=lambda r: (r.work, r.in_flight, r.sent))
