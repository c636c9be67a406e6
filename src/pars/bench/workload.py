"""Serving workloads: test-split prompts with a target model's true response lengths, and arrival times.

Pure and seeded: the same inputs give the same workload, so every policy in a run replays exactly the
same requests. Prompts come from the TEST split only (never trained on). A trace gives arrival times
only; each arrival is paired with a test prompt drawn by a seeded shuffle of the pool (the pool is
cycled when there are more arrivals than test prompts), so the trace's own token counts are not used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pars.bench.traces import scale_trace
from pars.data.records import LengthRecord
from pars.data.splits import PromptSplit

ARRIVALS = ("burst", "poisson", "trace")
# `--quick`: one burst and one Poisson run near capacity, a few minutes on 2 cores.
QUICK_PLAN = {"requests": 80, "burst": 40, "loads": (0.95,)}


@dataclass(frozen=True)
class PoolPrompt:
    """A test prompt and the target model's true response length for it (tokens)."""

    prompt: str
    true_tokens: int


@dataclass(frozen=True)
class WorkloadRequest:
    """One request to send: `output_tokens` is its `max_tokens` (with ignore_eos) after length scaling."""

    index: int
    prompt: str
    arrival_s: float
    output_tokens: int
    true_tokens: int


@dataclass(frozen=True)
class Workload:
    arrival: str  # one of ARRIVALS
    rate: float | None  # requests/s; None for a burst
    length_scale: float
    seed: int
    requests: tuple[WorkloadRequest, ...]
    trace: str | None = None

    @property
    def label(self) -> str:
        if self.arrival == "burst":
            return f"burst {len(self.requests)}"
        name = self.trace if self.arrival == "trace" else "poisson"
        return f"{name} {self.rate:.3g} req/s"


def prompt_pool(records: Sequence[LengthRecord], target_model: str, split: PromptSplit | None,
                max_prompt_chars: int | None = None) -> list[PoolPrompt]:
    """The target model's test-split prompts (every prompt when `split` is None), ordered by prompt id so
    the pool does not depend on file order.

    `max_prompt_chars` truncates long prompts (the engine's context is limited; the predictor reads only
    the first 128 tokens anyway).
    """
    rows = sorted((r for r in records if r.model == target_model
                   and (split is None or split.part_of(r.prompt) == "test")),
                  key=lambda r: (r.source, r.prompt_id, r.prompt))
    if not rows:
        raise ValueError(f"no {'test-split ' if split else ''}prompts for target model {target_model!r}")
    return [PoolPrompt(r.prompt[:max_prompt_chars] if max_prompt_chars else r.prompt, r.response_tokens)
            for r in rows]


def scale_length(tokens: int, factor: float) -> int:
    """Monotone, so the order of lengths is kept (ties may appear); at least one token."""
    if factor <= 0:
        raise ValueError(f"length scale must be > 0, got {factor}")
    return max(1, math.ceil(tokens * factor))


def length_hints(pool: Sequence[PoolPrompt], scores: Sequence[float]) -> dict[str, int]:
    """Pseudo lengths in the scores' order on the pool's own length scale: the prompt with the k-th lowest
    score gets the k-th shortest true length (keys then age exactly as the oracle's do)."""
    lengths = np.sort([p.true_tokens for p in pool])
    order = np.argsort(np.asarray(scores, dtype=float), kind="stable")
    return {pool[i].prompt: int(lengths[k]) for k, i in enumerate(order)}


def burst_arrivals(n: int) -> np.ndarray:
    return np.zeros(n)


def poisson_arrivals(n: int, rate: float, seed: int) -> np.ndarray:
    """Exponential gaps at `rate` requests/s, the first arrival at 0."""
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, size=n)
    gaps[0] = 0.0
    return np.cumsum(gaps)


def assign_prompts(pool: Sequence[PoolPrompt], n: int, seed: int) -> list[PoolPrompt]:
    """`n` prompts: a seeded permutation of the pool, cycled (each cycle freshly shuffled) if n > pool."""
    rng = np.random.default_rng(seed)
    chosen: list[PoolPrompt] = []
    while len(chosen) < n:
        chosen.extend(pool[i] for i in rng.permutation(len(pool)))
    return chosen[:n]


def build_workload(pool: Sequence[PoolPrompt], arrivals: np.ndarray, arrival: str, rate: float | None,
                   length_scale: float, seed: int, trace: str | None = None) -> Workload:
    """Pair sorted arrival times with prompts; the prompt seed is shared by every arrival process, so a
    burst and a Poisson run of the same size send the same prompts in the same order."""
    if arrival not in ARRIVALS:
        raise ValueError(f"arrival must be one of {ARRIVALS}, got {arrival!r}")
    prompts = assign_prompts(pool, len(arrivals), seed)
    requests = tuple(
        WorkloadRequest(i, p.prompt, float(t), scale_length(p.true_tokens, length_scale), p.true_tokens)
        for i, (p, t) in enumerate(zip(prompts, np.sort(arrivals, kind="stable")))
    )
    return Workload(arrival, rate, length_scale, seed, requests, trace)


@dataclass(frozen=True)
class ArrivalPlan:
    """Which workloads a benchmark sends. Rates are absolute (`rates`) or fractions of the FCFS burst
    capacity (`loads`); each rate run has `requests` arrivals, or rate x `duration_s` when that is set."""

    requests: int = 300
    burst: int = 80  # 0: no burst run (then `rates` must be given)
    loads: tuple[float, ...] = (0.5, 0.7, 0.85, 0.95, 1.1)
    rates: tuple[float, ...] = ()
    duration_s: float | None = None
    trace: str | None = None  # None: Poisson arrivals
    length_scale: float = 1.0
    seed: int = 0
    extra_bursts: tuple[int, ...] = ()  # more burst runs of these sizes (the first burst alone sets the capacity)

    def __post_init__(self) -> None:
        if self.burst <= 0 and not self.rates:
            raise ValueError("without a burst run there is no capacity to scale loads by: give absolute rates")
        if any(x <= 0 for x in self.loads + self.rates):
            raise ValueError("rates and loads must be > 0")
        if any(n < 1 for n in self.extra_bursts):
            raise ValueError("extra bursts must have at least one request")

    def burst_workload(self, pool: Sequence[PoolPrompt]) -> Workload | None:
        if self.burst <= 0:
            return None
        return build_workload(pool, burst_arrivals(self.burst), "burst", None, self.length_scale, self.seed)

    def rate_workloads(self, pool: Sequence[PoolPrompt], capacity_rps: float | None,
                       trace_times: np.ndarray | None = None) -> list[tuple[Workload, float | None]]:
        """(workload, load): the extra bursts (load None), then one per rate, lowest rate first; load is None
        when the capacity is unknown."""
        if self.rates:
            pairs = [(rate, rate / capacity_rps if capacity_rps else None) for rate in self.rates]
        else:
            if not capacity_rps:
                raise ValueError("loads need the FCFS burst capacity; none was measured")
            pairs = [(load * capacity_rps, load) for load in self.loads]
        workloads: list[tuple[Workload, float | None]] = [
            (build_workload(pool, burst_arrivals(n), "burst", None, self.length_scale, self.seed), None)
            for n in self.extra_bursts]
        for k, (rate, load) in enumerate(sorted(pairs)):
            n = max(2, round(rate * self.duration_s)) if self.duration_s else self.requests
            if self.trace is None:
                workloads.append((build_workload(pool, poisson_arrivals(n, rate, self.seed + 1 + k), "poisson", rate,
                                                 self.length_scale, self.seed), load))
            else:
                if trace_times is None:
                    raise ValueError(f"trace {self.trace!r} named but no arrival times given")
                workloads.append((build_workload(pool, scale_trace(trace_times, n, rate), "trace", rate,
                                                 self.length_scale, self.seed, self.trace), load))
        return workloads
