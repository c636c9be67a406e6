"""Ranking metrics: Kendall's tau-b, Spearman, and pairwise accuracy on pairs beyond the length gap."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import kendalltau, spearmanr


def kendall_tau(scores: np.ndarray, lengths: np.ndarray) -> float:
    """Kendall's tau-b (ties handled) between predicted scores and true lengths; NaN if undefined."""
    if len(scores) < 2:
        return float("nan")
    return float(kendalltau(scores, lengths, variant="b").statistic)


def spearman(scores: np.ndarray, lengths: np.ndarray) -> float:
    if len(scores) < 2:
        return float("nan")
    return float(spearmanr(scores, lengths).statistic)


def _kept_partners(sorted_lengths: np.ndarray, threshold: float) -> np.ndarray:
    """For each row of `sorted_lengths` (ascending): how many rows before it form a kept pair with it.

    Those partners are strictly shorter and a prefix: the gap (a - b) / a only grows as the partner b gets
    shorter. A vectorised binary search with the exact formula of `in_batch_pairs` finds where the prefix ends.
    """
    longer = sorted_lengths
    low = np.zeros(len(longer), dtype=np.int64)
    high = np.searchsorted(longer, longer, side="left").astype(np.int64)  # rows strictly shorter
    while np.any(active := low < high):
        middle = (low + high) // 2
        shorter = longer[np.minimum(middle, len(longer) - 1)]
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = np.where(longer > 0, np.abs(longer - shorter) / longer, 0.0)
        wide = active & (gap >= threshold)
        low = np.where(wide, middle + 1, low)
        high = np.where(active & ~wide, middle, high)
    return low


def _count_below(ranks: np.ndarray, prefix: np.ndarray, side: str) -> np.ndarray:
    """For each row q: how many of ranks[:prefix[q]] are below ranks[q] ("left") or not above it ("right").

    A merge-sort tree built one level at a time: prefix [0, k) is the union of the aligned blocks of size
    2^level for the set bits of k, and each level's blocks are searched at once through (block, rank) keys.
    O(n log^2 n) time, O(n) memory.
    """
    n = len(ranks)
    positions = np.arange(n, dtype=np.int64)
    counts = np.zeros(n, dtype=np.int64)
    level = 0
    while (1 << level) <= n:
        keys = np.sort((positions >> level) * n + ranks)  # [n] block-major, rank within the block
        has_block = ((prefix >> level) & 1) == 1
        base = ((prefix[has_block] >> level) - 1) * n
        counts[has_block] += (np.searchsorted(keys, base + ranks[has_block], side)
                              - np.searchsorted(keys, base, "left"))
        level += 1
    return counts


def gap_pair_counts(scores: np.ndarray, lengths: np.ndarray, threshold: float = 0.2) -> tuple[int, int, int]:
    """(kept pairs, pairs the scores order correctly, pairs with tied scores), without building the pairs.

    The pairs are exactly those of `in_batch_pairs`: within each label column (lengths [rows] or [rows, labels],
    NaN where unknown), unequal lengths whose relative gap is at least `threshold`. Memory is linear in rows
    (the pairs themselves are quadratic: 50k rows would need over 10 GB). A NaN score orders no pair correctly
    and ties none; an infinite score ties none (as inf - inf is NaN in the pairwise formula).
    """
    scores = np.asarray(scores, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.float64)
    if lengths.ndim == 1:
        lengths = lengths[:, None]
    kept = correct = tied = 0
    for column in lengths.T:
        known = ~np.isnan(column)
        order = np.argsort(column[known], kind="stable")
        column_lengths, column_scores = column[known][order], scores[known][order]
        partners = _kept_partners(column_lengths, threshold)
        ranks = np.unique(column_scores, return_inverse=True)[1].astype(np.int64).reshape(-1)  # NaN ranks last
        below = _count_below(ranks, partners, "left")
        not_above = _count_below(ranks, partners, "right")
        finite = np.isfinite(column_scores)
        kept += int(partners.sum())
        correct += int(below[~np.isnan(column_scores)].sum())
        tied += int((not_above - below)[finite].sum())
    return kept, correct, tied


def pairwise_accuracy(scores: np.ndarray, lengths: np.ndarray, threshold: float = 0.2) -> float:
    """Share of pairs beyond the length-gap threshold that the scores order correctly (score ties count half).

    Counted by sorting (`gap_pair_counts`), so memory stays linear in rows; equal to the mean over the pairs
    of `in_batch_pairs`.
    """
    kept, correct, tied = gap_pair_counts(scores, lengths, threshold)
    if kept == 0:
        return float("nan")
    return float((correct + 0.5 * tied) / kept)


@dataclass(frozen=True)
class RankingReport:
    kendall_tau: float
    spearman: float
    pairwise_accuracy: float
    n: int


def ranking_report(scores: np.ndarray, lengths: np.ndarray, threshold: float = 0.2) -> RankingReport:
    scores = np.asarray(scores, dtype=float)
    lengths = np.asarray(lengths, dtype=float)
    return RankingReport(kendall_tau(scores, lengths), spearman(scores, lengths),
                         pairwise_accuracy(scores, lengths, threshold), int(len(scores)))
