"""A waiting queue ordered by aged key, with the hard maximum wait; pure data structure, no engine.

Two tiers: requests with a size (an estimate or the neutral fallback) first, by aged key; then requests
still waiting for their estimate, by arrival, so an engine with free capacity still admits them
(work-conserving). Above both: any request that waited its bound (`AgingRule.max_wait`), oldest first.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Hashable, Iterable, Iterator
from typing import Generic, NamedTuple, TypeVar

from pars.scheduling.keys import AdmissionRate, AgingRule

T = TypeVar("T", bound=Hashable)

SIZED, PENDING = 0, 1


class _Entry(NamedTuple):
    tier: int
    key: float
    arrival: float
    seq: int


class RankedQueue(Generic[T]):
    """Heap by (tier, aged key, arrival) plus a heap by arrival for the starvation bound; lazy deletion.

    Sizes outlive queue membership (`set_size` before or after `add`), so a request that leaves and
    re-enters (skipped for a step, preempted) returns to its place; `forget` drops it for good. The
    clock and the bound are set once per engine step (`set_clock`), so a peek and the pop after it agree;
    pops are admissions, and their rate estimates the current FCFS wait.
    """

    def __init__(self, aging: AgingRule, epoch: float = 0.0) -> None:
        self.aging = aging
        self._epoch = epoch
        self._now = epoch
        self._sizes: dict[T, float] = {}
        self._arrivals: dict[T, float] = {}
        self._live: dict[T, _Entry] = {}
        self._by_key: list[tuple[_Entry, T]] = []
        self._by_arrival: list[tuple[float, int, T]] = []
        self.admissions = AdmissionRate()
        self._max_wait = aging.max_wait(math.inf)
        self._seq = itertools.count()

    def set_clock(self, now: float) -> None:
        self._now = now
        self._max_wait = self.aging.max_wait(self.admissions.fcfs_wait_s(len(self._live)))

    def add(self, item: T, arrival: float) -> None:
        """Queue `item`; it is ordered by its size if one is known, else in the pending tier."""
        self._arrivals.setdefault(item, arrival)
        self._push(item)

    def set_size(self, item: T, size: float) -> None:
        """Record the item's size; if it is queued, move it to its keyed place."""
        self._sizes[item] = size
        if item in self._live:
            self._push(item)

    def has_size(self, item: T) -> bool:
        return item in self._sizes

    def forget(self, item: T) -> None:
        """Drop everything known about an item that has finished."""
        self.remove(item)
        self._sizes.pop(item, None)
        self._arrivals.pop(item, None)

    def remove(self, item: T) -> None:
        self._live.pop(item, None)

    def remove_many(self, items: Iterable[T]) -> None:
        for item in items:
            self.remove(item)

    def peek(self) -> T:
        if not self._live:
            raise IndexError("peek from an empty queue")
        self._drop_stale()
        oldest = self._by_arrival[0]
        if self._now - oldest[0] >= self._max_wait:
            return oldest[2]
        return self._by_key[0][1]

    def pop(self) -> T:
        item = self.peek()
        del self._live[item]
        self.admissions.observe(self._now)
        return item

    def __len__(self) -> int:
        return len(self._live)

    def __bool__(self) -> bool:
        return bool(self._live)

    def __contains__(self, item: object) -> bool:
        return item in self._live

    def __iter__(self) -> Iterator[T]:
        """Items in the order `pop` would return them at the current clock."""

        def order(pair: tuple[T, _Entry]) -> tuple:
            entry = pair[1]
            overdue = self._now - entry.arrival >= self._max_wait
            return (0, entry.arrival, entry.seq) if overdue else (1, *entry)

        return iter([item for item, _ in sorted(self._live.items(), key=order)])

    def _push(self, item: T) -> None:
        arrival = self._arrivals[item]
        size = self._sizes.get(item)
        seq = next(self._seq)
        if size is None:
            entry = _Entry(PENDING, 0.0, arrival, seq)
        else:
            entry = _Entry(SIZED, self.aging.static_key(size, arrival, self._epoch), arrival, seq)
        self._live[item] = entry
        heapq.heappush(self._by_key, (entry, item))
        heapq.heappush(self._by_arrival, (arrival, seq, item))

    def _is_live(self, item: T, seq: int) -> bool:
        entry = self._live.get(item)
        return entry is not None and entry.seq == seq

    def _drop_stale(self) -> None:
        while not self._is_live(self._by_key[0][1], self._by_key[0][0].seq):
            heapq.heappop(self._by_key)
        while not self._is_live(self._by_arrival[0][2], self._by_arrival[0][1]):
            heapq.heappop(self._by_arrival)
        if len(self._by_key) > 4 * len(self._live) + 64:
            self._compact()

    def _compact(self) -> None:
        self._by_key = [(entry, item) for item, entry in self._live.items()]
        heapq.heapify(self._by_key)
        self._by_arrival = [(entry.arrival, entry.seq, item) for item, entry in self._live.items()]
        heapq.heapify(self._by_arrival)
