"""One simulated vLLM V1 replica: iteration-level scheduling with a PARS-ordered waiting queue, in sim time.

Follows `Scheduler.schedule()` of vLLM 0.32.0 (synchronous scheduling, no prefix caching, no spec decode):
running requests first, in running order, each its decode token or next prefill chunk within the token
budget; a request whose blocks cannot be allocated preempts the last running request (recompute: it
keeps its generated tokens and prefills them again); then, only if nothing was preempted, waiting
requests in `RankedQueue` order while a slot, budget and blocks for the FULL sequence are free
(`scheduler_reserve_full_isl`, vLLM's default), stopping at the first that does not fit. A step's
scheduled requests sample a token at its end when their prefill is complete.

Runs of pure-decode steps with nothing to admit are advanced in one leap with the closed-form sum of
their step times; `leap=False` simulates the same thing step by step.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from pars.scheduling import AgingRule, RankedQueue
from pars.sim.batch import QueuedRequest, RunningBatch
from pars.sim.profile import StepProfile
from pars.sim.requests import SimRequest
from pars.sim.result import EngineCounters, SimResult, StepRecord

SCORING_WHERE = ("front", "engine")


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """vLLM's scheduler limits, plus where scoring costs time: "front" = a single FIFO scorer before the
    engine delays each request's entry by `scoring_ms` (and by the requests scored ahead of it);
    "engine" = the scoring of requests that arrived since the last step lengthens the next step."""

    num_kv_blocks: int
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    block_size: int = 16
    chunked_prefill: bool = True
    scoring_ms: float = 0.0
    scoring_where: str = "front"

    def __post_init__(self) -> None:
        for key in ("num_kv_blocks", "max_num_seqs", "max_num_batched_tokens", "block_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
        if not (math.isfinite(self.scoring_ms) and self.scoring_ms >= 0):
            raise ValueError(f"scoring_ms must be a finite number >= 0, got {self.scoring_ms}")
        if self.scoring_where not in SCORING_WHERE:
            raise ValueError(f"scoring_where must be one of {SCORING_WHERE}, got {self.scoring_where!r}")


def simulate(requests: Iterable[SimRequest], profile: StepProfile, config: EngineConfig,
             aging: AgingRule = AgingRule(), *, on_step: Callable[[StepRecord], None] | None = None,
             leap: bool = True) -> SimResult:
    """Serve `requests` (sorted by arrival; streamed, so an iterator of millions is fine) on one replica."""
    return Replica(profile, config, aging, on_step, leap).run(iter(requests))


def scored_entries(requests: Iterable[SimRequest], scoring_s: float) -> Iterator[tuple[float, SimRequest]]:
    """Each request with the time it enters the engine's queue, after a single FIFO scorer that takes
    `scoring_s` a request (0: at arrival); requests must come sorted by arrival."""
    last, scorer_free = -math.inf, -math.inf
    for request in requests:
        if request.arrival_s < last:
            raise ValueError(f"request {request.index} arrives at {request.arrival_s}, before the one "
                             f"ahead of it ({last}): sort requests by arrival")
        last = request.arrival_s
        scorer_free = max(request.arrival_s, scorer_free) + scoring_s
        yield scorer_free, request


class Replica:
    """The simulation state: the waiting queue, the running batch, per-request results, the clock."""

    def __init__(self, profile: StepProfile, config: EngineConfig, aging: AgingRule,
                 on_step: Callable[[StepRecord], None] | None, leap: bool) -> None:
        self.profile, self.config, self.on_step, self.leap = profile, config, on_step, leap
        self.queue: RankedQueue[int] = RankedQueue(aging)
        self.batch = RunningBatch(config.block_size)
        self.waiting: dict[int, QueuedRequest] = {}
        self.index, self.outputs = array("q"), array("q")
        self.arrival, self.entry, self.admitted, self.first_token, self.finish = (array("d") for _ in range(5))
        self.now = -math.inf  # the clock starts at the first entry
        self.scoring_charge = 0.0
        self.steps = self.preemptions = self.max_running = self.max_step_tokens = self.leaps = 0
        self.finished: deque[int] | None = None  # set by a router that tracks what is in flight: rows as they finish

    def run(self, requests: Iterator[SimRequest]) -> SimResult:
        front_s = self.config.scoring_ms / 1000.0 if self.config.scoring_where == "front" else 0.0
        for entry_s, request in scored_entries(requests, front_s):
            self.check_fits(request)
            self.advance(entry_s)
            self.enter(entry_s, request)
        self.advance(math.inf)
        return self.result()

    def advance(self, until: float) -> None:
        """Run every step that starts before `until` (the next entry); an idle replica waits for it."""
        while self.now < until:
            if not len(self.batch) and not self.queue:
                if math.isfinite(until):
                    self.now = until
                return
            if not (self.leap and self._leap(until)):
                self._step()

    def result(self) -> SimResult:
        arrays = {name: np.frombuffer(getattr(self, name), dtype=float) for name in
                  ("arrival", "entry", "admitted", "first_token", "finish")}
        return SimResult(np.array(self.index, dtype=np.int64), arrays["arrival"], arrays["first_token"],
                         arrays["finish"], np.array(self.outputs, dtype=np.int64),
                         arrays["admitted"] - arrays["entry"],
                         EngineCounters(self.steps, self.preemptions, self.max_running, self.max_step_tokens,
                                        self.leaps))

    def check_fits(self, request: SimRequest) -> None:
        """vLLM's start-up checks: the whole sequence fits the KV cache (and one step, without chunking)."""
        config = self.config
        context = request.prompt_tokens + request.output_tokens - 1  # tokens in the last step
        if -(-context // config.block_size) > config.num_kv_blocks:
            raise ValueError(f"request {request.index} needs {context} tokens of KV cache, more than the "
                             f"{config.num_kv_blocks} blocks of {config.block_size} tokens hold")
        if not config.chunked_prefill and context > config.max_num_batched_tokens:
            raise ValueError(f"request {request.index} ({context} tokens) cannot be prefilled in one step "
                             f"of {config.max_num_batched_tokens} tokens without chunked prefill")

    def enter(self, entry_s: float, request: SimRequest) -> int:
        """Queue `request` at `entry_s` (not before the clock's last advance); returns its row."""
        rid = len(self.index)
        self.index.append(request.index)
        self.outputs.append(request.output_tokens)
        self.arrival.append(request.arrival_s)
        self.entry.append(entry_s)
        for column in (self.admitted, self.first_token, self.finish):
            column.append(math.nan)
        if request.size is not None:
            self.queue.set_size(rid, request.size)
        self.queue.add(rid, entry_s)
        self.waiting[rid] = QueuedRequest(rid, request.prompt_tokens, request.output_tokens, 0)
        if self.config.scoring_where == "engine":
            self.scoring_charge += self.config.scoring_ms / 1000.0
        return rid

    def _step(self) -> None:
        config, batch, start = self.config, self.batch, self.now
        self.queue.set_clock(start)
        budget = config.max_num_batched_tokens
        free = config.num_kv_blocks - batch.blocks()
        scheduled, victims = batch.schedule_running(budget, free)
        for victim in victims:
            self.waiting[victim.rid] = victim
            self.queue.add(victim.rid, self.entry[victim.rid])
        self.preemptions += len(victims)
        if not victims:
            free = config.num_kv_blocks - batch.blocks(batch.computed + scheduled)
            scheduled = self._admit(scheduled, budget - int(scheduled.sum()), free)
        active = scheduled > 0
        prefilling = batch.computed < batch.prefill_end
        prefill_tokens = int(scheduled[prefilling].sum())
        decode_seqs = int((active & ~prefilling).sum())
        kv_tokens = int((batch.computed + scheduled)[active].sum())
        total = int(scheduled.sum())
        duration = self.profile.step_time(prefill_tokens, decode_seqs, kv_tokens) + self.scoring_charge
        self.scoring_charge = 0.0
        self._count_step(1, len(batch), total)
        self.now = start + duration
        batch.computed += scheduled
        sampled = active & (batch.computed == batch.tokens)
        batch.tokens[sampled] += 1
        if self.on_step is not None:
            self.on_step(StepRecord(start, duration, prefill_tokens, decode_seqs, kv_tokens, total, len(batch),
                                    batch.blocks(), int(sampled.sum()),
                                    tuple(self.index[victim.rid] for victim in victims)))
        generated = batch.generated()
        for rid in batch.ids[sampled & (generated == 1)].tolist():
            self.first_token[rid] = self.now
        self._finish(sampled & (generated == batch.outputs))

    def _admit(self, scheduled: np.ndarray, budget: int, free: int) -> np.ndarray:
        """vLLM's second pass: admit waiting requests in queue order until one does not fit."""
        config, bs, rows, grants = self.config, self.config.block_size, [], []
        while budget > 0 and self.queue and len(self.batch) + len(rows) < config.max_num_seqs:
            rid = self.queue.peek()
            request = self.waiting[rid]
            tokens = request.prompt + request.generated
            if (not config.chunked_prefill and tokens > budget) or -(-tokens // bs) > free:
                break
            self.queue.pop()
            del self.waiting[rid]
            grant = min(tokens, budget)
            rows.append(request)
            grants.append(grant)
            budget -= grant
            free -= -(-grant // bs)
            if math.isnan(self.admitted[rid]):
                self.admitted[rid] = self.now
        if not rows:
            return scheduled
        self.batch.extend(rows)
        return np.concatenate([scheduled, np.array(grants, dtype=np.int64)])

    def _leap(self, next_entry_s: float) -> bool:
        """Advance k > 0 pure-decode steps at once if nothing can change the running set before the k-th
        ends: no admission (queue empty or batch full), no finish, no block shortage, no entry."""
        batch, config, profile = self.batch, self.config, self.profile
        n = len(batch)
        if (self.scoring_charge or n > config.max_num_batched_tokens
                or (self.queue and n < config.max_num_seqs) or not batch.all_decoding()):
            return False
        remaining = batch.outputs - batch.generated()
        k = batch.steps_before_block_shortage(config.num_kv_blocks, int(remaining.min()))
        if k == 0:
            return False
        per_step = profile.base_s + profile.per_decode_seq_s * n
        kv0 = int(batch.computed.sum()) + n

        def start(j: int) -> float:  # start time of the j-th step of the leap; kv grows by n a step
            return self.now + j * per_step + profile.per_kv_token_s * (j * kv0 + n * j * (j - 1) / 2)

        if start(k - 1) >= next_entry_s:  # stop before the first step that starts after an entry
            low, k = 0, k - 1  # start(low) < next_entry_s <= start(k)
            while k - low > 1:
                mid = (low + k) // 2
                low, k = (mid, k) if start(mid) < next_entry_s else (low, mid)
        if self.on_step is not None:
            for j in range(k):
                kv = kv0 + n * j
                self.on_step(StepRecord(start(j), profile.step_time(0, n, kv), 0, n, kv, n, n,
                                        batch.blocks(batch.computed + j + 1), n))
        self.now = start(k)
        self._count_step(k, n, n)
        self.leaps += 1
        batch.computed += k
        batch.tokens += k
        self._finish(remaining == k)
        return True

    def _count_step(self, steps: int, running: int, tokens: int) -> None:
        self.steps += steps
        self.max_running = max(self.max_running, running)
        self.max_step_tokens = max(self.max_step_tokens, tokens)

    def _finish(self, done: np.ndarray) -> None:
        if not done.any():
            return
        for rid in self.batch.ids[done].tolist():
            self.finish[rid] = self.now
            self.queue.forget(rid)
            if self.finished is not None:
                self.finished.append(rid)
        self.batch.keep(~done)
