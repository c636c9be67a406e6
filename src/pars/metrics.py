"""Ranking metrics: Kendall's tau-b, Spearman, and pairwise accuracy on pairs beyond the length gap."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import kendalltau, spearmanr

from pars.data.pairs import in_batch_pairs


def kendall_tau(scores: np.ndarray, lengths: np.ndarray) -> float:
    """Kendall's tau-b (ties handled) between predicted scores and true lengths; NaN if undefined."""
    if len(scores) < 2:
        return float("nan")
    return float(kendalltau(scores, lengths, variant="b").statistic)


def spearman(scores: np.ndarray, lengths: np.ndarray) -> float:
    if len(scores) < 2:
        return float("nan")
    return float(spearmanr(scores, lengths).statistic)


def pairwise_accuracy(scores: np.ndarray, lengths: np.ndarray, threshold: float = 0.2) -> float:
    """Share of pairs beyond the length-gap threshold that the scores order correctly (score ties count half)."""
    pairs = in_batch_pairs(np.asarray(lengths, dtype=float), threshold)
    if pairs.kept == 0:
        return float("nan")
    scores = np.asarray(scores, dtype=float)
    agreement = np.sign(scores[pairs.first] - scores[pairs.second]) * pairs.sign
    return float(np.mean((agreement > 0) + 0.5 * (agreement == 0)))


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
