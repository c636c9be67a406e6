"""Pair building with length-gap filtering: which prompt pairs teach the ranker something.

A pair is kept only if the two responses come from the SAME model (or label column) and their lengths
differ by at least `threshold` relative to the longer one; closer pairs are sampling noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def length_gap_ratio(length_a: float, length_b: float) -> float:
    """|La - Lb| / max(La, Lb); 0 when both are 0."""
    longer = max(length_a, length_b)
    return 0.0 if longer <= 0 else abs(length_a - length_b) / longer


@dataclass(frozen=True)
class PairSet:
    """Index pairs into a batch: `first` is longer than `second` when `sign` is +1, shorter when -1."""

    first: np.ndarray  # [pairs] int
    second: np.ndarray  # [pairs] int
    sign: np.ndarray  # [pairs] float, +1 or -1
    considered: int  # same-label pairs looked at, before filtering

    @property
    def kept(self) -> int:
        return int(self.first.size)

    @property
    def filtered(self) -> int:
        return self.considered - self.kept


def in_batch_pairs(lengths: np.ndarray, threshold: float) -> PairSet:
    """All kept pairs among the rows of a batch.

    lengths: [batch, labels] float, NaN where a row has no length for that label (model). Pairs are
    formed within each label column; a pair of rows that two models both rank counts twice, which
    weights pairs by how many models agree on them.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    if lengths.ndim == 1:
        lengths = lengths[:, None]
    n = lengths.shape[0]
    upper_i, upper_j = np.triu_indices(n, k=1)
    a = lengths[upper_i]  # [upper_pairs, labels]
    b = lengths[upper_j]
    both = ~(np.isnan(a) | np.isnan(b))
    longer = np.fmax(a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.where(longer > 0, np.abs(a - b) / longer, 0.0)
    keep = both & (gap >= threshold) & (a != b)
    pair_idx, _label_idx = np.nonzero(keep)
    first = upper_i[pair_idx]
    second = upper_j[pair_idx]
    sign = np.sign(a[keep] - b[keep])
    return PairSet(first=first, second=second, sign=sign, considered=int(both.sum()))
