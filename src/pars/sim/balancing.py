"""Simulated load balancers: how a router in front of N replicas picks one (pars.sim.cluster).

round-robin and power-of-two model vllm-router's `round_robin` and `power_of_two` policies (and llm-d's cheap
default); least-requests and least predicted work in flight are the length-aware alternatives this project
measured against them (docs/sim.md, "Replicas": least work did not earn its place, so no PARS router ships).

Predicted work: a request's rank share q among held-out sizes (pars.scoring.rank) mapped onto a log-uniform
range of output lengths, 16 * 256**q tokens (16 to 4,096). A rough prior: only its order matters to the
balancer.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

NEUTRAL_SHARE = 0.5  # a request without an estimate: the middle
BALANCERS = ("least-work", "least-requests", "round-robin", "power-of-two")


def predicted_tokens(share: float) -> float:
    return 16.0 * 256.0 ** share


NEUTRAL_WORK = predicted_tokens(NEUTRAL_SHARE)  # a request the balancer has no estimate for


@dataclass
class Replica:
    """One replica and what the balancer has in flight there."""

    name: str
    in_flight: int = 0
    work: float = 0.0  # predicted tokens of the requests in flight
    sent: int = 0

    def dispatch(self, work: float) -> None:
        """A request of `work` predicted tokens was sent here."""
        self.in_flight, self.work, self.sent = self.in_flight + 1, self.work + work, self.sent + 1

    def release(self, work: float) -> None:
        """A request sent here finished."""
        self.in_flight, self.work = self.in_flight - 1, max(0.0, self.work - work)


@dataclass
class Balancer:
    """Chooses a replica by `policy` (one of BALANCERS).

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
            raise ValueError("a balancer needs at least one replica")
        self._random = random.Random(self.seed)

    def choose(self) -> Replica:
        replicas = self.replicas
        if self.policy == "round-robin":
            return replicas[next(self._turn) % len(replicas)]
        if self.policy == "least-requests":
            return min(replicas, key=lambda r: (r.in_flight, r.sent))
        if self.policy == "power-of-two":
            drawn = self._random.sample(replicas, min(2, len(replicas)))
            return min(drawn, key=lambda r: r.in_flight)
        return min(replicas, key=lambda r: (r.work, r.in_flight, r.sent))
