"""How a request's size estimate and its waiting time become one queue key (lowest first).

The rule: at time t a waiting request's key is `size - rate * (t - arrival)`; once it has waited its
bound it goes ahead of every request that has not (oldest first). Because every waiting request ages at
the same rate, comparing keys at any t equals comparing `size + rate * arrival`, so keys are computed
once at insertion and a heap stays valid.

The bound at time t is `min(max_wait_s, fcfs_wait_factor * fcfs_wait(t))`: a fixed maximum, and one that
scales with the current queueing delay, `fcfs_wait(t)` = (requests waiting) / (recent admission rate),
the wait FCFS would give a request arriving now. So no request waits much longer than `factor` times
the longest wait FCFS would impose at that load, which bounds the tail; in a burst the queue is long, the
bound is loose, and shortest-first ordering keeps its gain.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class AgingRule:
    """Aging settings: `rate` key units per second of waiting; `max_wait_s` the hard bound and
    `fcfs_wait_factor` the bound relative to the estimated FCFS wait (inf = off)."""

    rate: float = 0.0
    max_wait_s: float = math.inf
    fcfs_wait_factor: float = math.inf

    def __post_init__(self) -> None:
        if self.rate < 0 or not math.isfinite(self.rate):
            raise ValueError(f"aging rate must be a finite number >= 0, got {self.rate}")
        if not self.max_wait_s > 0:
            raise ValueError(f"max wait must be > 0 seconds, got {self.max_wait_s}")
        if not self.fcfs_wait_factor >= 1:
            raise ValueError(f"the FCFS-wait factor must be >= 1 (or inf), got {self.fcfs_wait_factor}")

    def static_key(self, size: float, arrival: float, epoch: float) -> float:
        """The time-independent part of the key; `epoch` keeps the product small for float precision."""
        return size + self.rate * (arrival - epoch)

    def max_wait(self, fcfs_wait_s: float) -> float:
        """The wait after which a request goes first, given the current FCFS wait estimate."""
        relative = self.fcfs_wait_factor * fcfs_wait_s if math.isfinite(self.fcfs_wait_factor) else math.inf
        return min(self.max_wait_s, relative)

    def is_overdue(self, arrival: float, now: float, fcfs_wait_s: float = math.inf) -> bool:
        """True once the request has waited its bound and must go first."""
        return now - arrival >= self.max_wait(fcfs_wait_s)


class AdmissionRate:
    """Requests admitted per second over the admissions of the last `window_s` seconds; None until they span at
    least `min_span_s` (admissions come in clumps, one per freed slot: a rate over milliseconds means nothing).

    A window in time, not in admissions: a GPU engine admits hundreds a second, and a fixed count of them would
    never span `min_span_s` (the simulator showed a 64-admission window switching the bound off at 13/s)."""

    def __init__(self, window_s: float = 30.0, min_span_s: float = 5.0, max_kept: int = 1 << 16) -> None:
        self._times: deque[float] = deque(maxlen=max_kept)
        self.window_s = window_s
        self.min_span_s = min_span_s

    def observe(self, now: float) -> None:
        self._times.append(now)
        while now - self._times[0] > self.window_s:
            self._times.popleft()

    def per_second(self) -> float | None:
        if len(self._times) < 2 or self._times[-1] - self._times[0] < self.min_span_s:
            return None
        return (len(self._times) - 1) / (self._times[-1] - self._times[0])

    def fcfs_wait_s(self, waiting_ahead: int) -> float:
        """Estimated FCFS wait behind `waiting_ahead` requests; inf while the rate is unknown."""
        rate = self.per_second()
        return waiting_ahead / rate if rate else math.inf


class NeutralSize:
    """The size given to a request without an estimate, so it neither jumps the queue nor sinks to its end.

    The rule: the mean of recent estimates (0 before any), held fixed while any request that was given
    it is unfinished. Fallback requests that coexist therefore share one size, and the aged key orders
    them by arrival among themselves; the value moves on only once all of them have left.
    """

    def __init__(self, window: int = 256) -> None:
        self._recent: deque[float] = deque(maxlen=window)
        self._holders: set[Hashable] = set()
        self._held = 0.0

    def observe(self, size: float) -> None:
        self._recent.append(size)

    @property
    def mean(self) -> float:
        return sum(self._recent) / len(self._recent) if self._recent else 0.0

    def assign(self, holder: Hashable) -> float:
        """The neutral size for `holder` (a request id); call `release` when that request finishes."""
        if not self._holders:
            self._held = self.mean
        self._holders.add(holder)
        return self._held

    def release(self, holder: Hashable) -> None:
        self._holders.discard(holder)

    def holds(self, holder: Hashable) -> bool:
        return holder in self._holders
