"""What a simulation returns: per-request timings as arrays, engine counters, and per-step records."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pars.bench.latency import RequestTiming


@dataclass(frozen=True)
class StepRecord:
    """One engine step; `blocks_used` after this step's allocations, before finished requests free theirs;
    `sampled` = requests that got an output token; `preempted` = indices of the requests preempted."""

    start_s: float
    duration_s: float
    prefill_tokens: int
    decode_seqs: int
    kv_tokens: int
    scheduled_tokens: int
    running: int
    blocks_used: int
    sampled: int
    preempted: tuple[int, ...] = ()


@dataclass(frozen=True)
class EngineCounters:
    steps: int
    preemptions: int
    max_running: int
    max_step_tokens: int
    leaps: int  # runs of decode steps advanced at once


@dataclass(frozen=True)
class SimResult:
    """Per-request arrays in input order (`queueing_s` = first admission - entry into the engine queue)."""

    index: np.ndarray
    arrival_s: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    output_tokens: np.ndarray
    queueing_s: np.ndarray
    counters: EngineCounters

    def timings(self) -> list[RequestTiming]:
        columns = (self.index.tolist(), self.arrival_s.tolist(), self.first_token_s.tolist(),
                   self.finish_s.tolist(), self.output_tokens.tolist(), self.queueing_s.tolist())
        return [RequestTiming(*row) for row in zip(*columns)]
