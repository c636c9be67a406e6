"""Latency statistics of one serving run, and ratios between policies measured in the same run.

Pure: takes per-request timings (seconds on one monotonic clock), returns numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RequestTiming:
    """One request's times in seconds since the run started: sent by the client, first and last token
    as stamped by the engine; `queueing_s` the engine's scheduled - queued time."""

    index: int
    arrival_s: float
    first_token_s: float
    finish_s: float
    output_tokens: int
    queueing_s: float

    @property
    def ttft_s(self) -> float:
        return self.first_token_s - self.arrival_s

    @property
    def e2e_s(self) -> float:
        return self.finish_s - self.arrival_s


@dataclass(frozen=True)
class Distribution:
    mean: float
    p50: float
    p90: float
    p99: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Distribution:
        data = np.asarray(values, dtype=float)
        p50, p90, p99 = np.percentile(data, [50, 90, 99])
        return cls(float(data.mean()), float(p50), float(p90), float(p99))


@dataclass(frozen=True)
class LatencySummary:
    """Per-request distributions and throughput (over first arrival to last finish) of one run."""

    n: int
    e2e: Distribution
    ttft: Distribution
    per_token: Distribution  # end-to-end latency / output tokens
    queueing: Distribution
    throughput_rps: float
    throughput_tok_s: float
    makespan_s: float


def summarise(timings: Sequence[RequestTiming]) -> LatencySummary:
    if not timings:
        raise ValueError("no request timings to summarise")
    start = min(t.arrival_s for t in timings)
    makespan = max(t.finish_s for t in timings) - start
    tokens = sum(t.output_tokens for t in timings)
    return LatencySummary(
        n=len(timings),
        e2e=Distribution.of([t.e2e_s for t in timings]),
        ttft=Distribution.of([t.ttft_s for t in timings]),
        per_token=Distribution.of([t.e2e_s / max(t.output_tokens, 1) for t in timings]),
        queueing=Distribution.of([t.queueing_s for t in timings]),
        throughput_rps=len(timings) / makespan if makespan > 0 else float("nan"),
        throughput_tok_s=tokens / makespan if makespan > 0 else float("nan"),
        makespan_s=makespan,
    )


def ratio(value: float, reference: float) -> float:
    return value / reference if reference > 0 else float("nan")


def captured_reduction(fcfs: float, policy: float, oracle: float, min_gain: float = 0.05) -> float:
    """(FCFS - policy) / (FCFS - oracle): the share of oracle SJF's improvement a policy gets (1 = all).

    NaN unless the oracle gains at least `min_gain` of FCFS: a share of nearly nothing is noise.
    """
    gap = fcfs - oracle
    return (fcfs - policy) / gap if gap >= min_gain * fcfs and gap > 0 else float("nan")


def saturated_rps(timings: Sequence[RequestTiming], slots: int) -> float:
    """Requests/s of a burst while the engine's batch was full: completions until only `slots` requests
    were left, over the time they took. The last `slots` completions drain a batch that is no longer full;
    how long that takes depends on where the longest requests fell, not on the engine's speed (n / makespan
    counts it, and moved the load axis between repeats)."""
    finishes = sorted(t.finish_s for t in timings)
    start = min(t.arrival_s for t in timings)
    counted = len(finishes) - slots
    if counted < slots or finishes[counted - 1] <= start:
        return len(finishes) / (finishes[-1] - start) if finishes[-1] > start else float("nan")
    return counted / (finishes[counted - 1] - start)


def goodput_rps(rates: Sequence[float], p90s: Sequence[float], slo_s: float) -> float:
    """The highest arrival rate at which P90 latency stays within `slo_s`, linearly interpolated between the
    measured rates (sorted by rate): the first crossing counts. Below the lowest rate or above the highest it
    is that rate (0.0 when even the lowest misses); NaN without rates."""
    pairs = sorted(zip(rates, p90s))
    if not pairs:
        return float("nan")
    if pairs[0][1] > slo_s:
        return 0.0
    for (r0, p0), (r1, p1) in zip(pairs, pairs[1:]):
        if p1 > slo_s:
            return r0 + (r1 - r0) * (slo_s - p0) / (p1 - p0)
    return pairs[-1][0]
