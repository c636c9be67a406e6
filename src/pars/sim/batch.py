"""The running set of one simulated engine, in vLLM's running order, as parallel numpy arrays.

Per step the work is a few array operations whatever the batch size; only a step that preempts walks
the requests one by one, as vLLM's loop does. A request holds ceil(computed / block_size) KV blocks
(no prefix caching), so block counts are derived, never stored.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

FIELDS = ("ids", "prompt", "outputs", "computed", "tokens", "prefill_end")


class QueuedRequest(NamedTuple):
    """A request out of the running set: new (generated 0) or preempted (it keeps the tokens it generated,
    not their KV cache, so it prefills prompt + generated again)."""

    rid: int
    prompt: int
    outputs: int
    generated: int


class RunningBatch:
    """`tokens` = prompt + generated (vLLM's num_tokens); `prefill_end` = tokens at admission, so a
    request is prefilling while computed < prefill_end; a decoding one has tokens = computed + 1."""

    ids: np.ndarray
    prompt: np.ndarray
    outputs: np.ndarray
    computed: np.ndarray
    tokens: np.ndarray
    prefill_end: np.ndarray

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        for name in FIELDS:
            setattr(self, name, np.empty(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.ids)

    def blocks(self, computed: np.ndarray | None = None) -> int:
        """KV blocks held (or needed for the given computed counts)."""
        computed = self.computed if computed is None else computed
        return int(((computed + self.block_size - 1) // self.block_size).sum())

    def generated(self) -> np.ndarray:
        return self.tokens - self.prompt

    def extend(self, rows: list[tuple[int, int, int, int]]) -> None:
        """Append admitted requests (rid, prompt, outputs, generated), nothing computed yet."""
        rid, prompt, outputs, generated = (np.array(column, dtype=np.int64) for column in zip(*rows))
        tokens = prompt + generated
        new = {"ids": rid, "prompt": prompt, "outputs": outputs, "computed": np.zeros_like(rid),
               "tokens": tokens, "prefill_end": tokens}
        for name in FIELDS:
            setattr(self, name, np.concatenate([getattr(self, name), new[name]]))

    def keep(self, mask: np.ndarray) -> None:
        for name in FIELDS:
            setattr(self, name, getattr(self, name)[mask])

    def schedule_running(self, budget: int, free_blocks: int) -> tuple[np.ndarray, list[QueuedRequest]]:
        """vLLM's first pass: each running request in order gets min(its new tokens, budget left) if its
        blocks can be allocated; if not, the last running request is preempted until they can (the
        request itself last, which ends the pass). Returns tokens scheduled per remaining request and
        the preempted requests, most recently admitted first."""
        new = self.tokens - self.computed
        scheduled = np.clip(budget - (np.cumsum(new) - new), 0, new)
        if self.blocks(self.computed + scheduled) - self.blocks() <= free_blocks:
            return scheduled, []
        bs = self.block_size
        computed, wanted = self.computed.tolist(), new.tolist()
        granted: list[int] = []
        live = len(computed)
        while len(granted) < live and budget > 0:
            i = len(granted)
            n = min(wanted[i], budget)
            extra = -(-(computed[i] + n) // bs) + (computed[i] // -bs)
            while extra > free_blocks and live > i:
                live -= 1
                free_blocks += -(-computed[live] // bs)
            if live == i:
                break
            granted.append(n)
            free_blocks -= extra
            budget -= n
        columns = (self.ids, self.prompt, self.outputs, self.generated())
        preempted = [QueuedRequest(*row) for row in zip(*(column[live:].tolist() for column in columns))]
        self.keep(slice(0, live))
        return np.array(granted + [0] * (live - len(granted)), dtype=np.int64), preempted[::-1]

    def all_decoding(self) -> bool:
        return bool((self.computed >= self.prefill_end).all())

    def steps_before_block_shortage(self, capacity: int, limit: int) -> int:
        """Decode steps (at most `limit`) that can run before some request needs a block none is free for.

        At offset j every request needs ceil((computed + 1 + j) / bs) blocks; writing j = m * bs + t, the
        total is need(t) + n * m, so the first j over capacity follows from bs sums, not j of them.
        """
        n, bs = len(self), self.block_size
        if capacity - self.blocks() >= n * -(-limit // bs):
            return limit  # each request needs at most ceil(limit / bs) more blocks in `limit` steps
        offsets = np.arange(bs)
        need = ((self.computed[:, None] + 1 + offsets + bs - 1) // bs).sum(axis=0)
        rounds = np.where(need > capacity, 0, (capacity - need) // n + 1)
        return min(limit, int((rounds * bs + offsets).min()))
