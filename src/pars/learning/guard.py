"""When a refitted scorer may replace the live one, and when a swap is rolled back (pure).

A candidate wins only if it ranks a held-back slice of recent traffic (exact lengths only: a censored one is
not a rank) better than the live scorer by more than `z` standard errors of the difference, estimated by a
paired bootstrap over the slice's prompts: on 100 prompts a tau gain of 0.03 is noise, on 2,000 it is not.
The same test, turned around, decides a rollback on the window of traffic after a swap.
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np

from pars.metrics import kendall_tau

MIN_SLICE = 30  # fewer exact lengths than this decide nothing


@dataclass(frozen=True)
class Verdict:
    tau_live: float
    tau_candidate: float
    needed: float  # the gain the slice's size justifies
    n: int

    @property
    def gain(self) -> float:
        return self.tau_candidate - self.tau_live

    @property
    def better(self) -> bool:
        return self.n >= MIN_SLICE and self.gain > self.needed


def tau(scores: np.ndarray, lengths: np.ndarray) -> float:
    """`pars.metrics.kendall_tau`, with 0 where it is undefined (fewer than 2, or constant, inputs rank nothing)."""
    value = kendall_tau(scores, lengths)
    return 0.0 if math.isnan(value) else value


def compare(live: np.ndarray, candidate: np.ndarray, lengths: np.ndarray, z: float = 1.0, resamples: int = 200,
            seed: int = 0) -> Verdict:
    """Whether `candidate` ranks `lengths` better than `live`, by more than z paired-bootstrap standard errors."""
    live, candidate, lengths = (np.asarray(a, dtype=np.float64) for a in (live, candidate, lengths))
    n = len(lengths)
    if n < MIN_SLICE:
        return Verdict(tau(live, lengths), tau(candidate, lengths), np.inf, n)
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(resamples):
        pick = rng.integers(0, n, n)
        gains.append(tau(candidate[pick], lengths[pick]) - tau(live[pick], lengths[pick]))
    return Verdict(tau(live, lengths), tau(candidate, lengths), z * float(np.std(gains)), n)
