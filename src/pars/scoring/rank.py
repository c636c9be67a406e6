"""Where a ranker score ranks: the share of held-out prompts that score below it.

A score has no fixed scale (a retrained ranker shifts every score), so a router or gateway that compares
requests across replicas and restarts wants a rank instead. `pars train` and `pars distill` record the
checkpoint's score quantiles on held-out prompts (`PredictorConfig.score_quantiles`); `pars score-server`
answers each score's share below from them, and the simulator ranks sizes the same way.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence


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
