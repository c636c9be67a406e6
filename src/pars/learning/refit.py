"""Refitting the distilled student's head on the served model's own lengths (pure: arrays in, a student out).

Only the head moves (two small matmuls over the prompt's fixed features: the mean static word vector and the
log length), so a refit over thousands of logged lengths takes seconds of one core, and a log that stored only
the features (`--learn-store embeddings`) trains as well as one that kept the text. Warm-started from the live
student and pulled back towards it (`anchor`), trained with PARS's margin ranking loss on pairs whose lengths
differ by at least `threshold` (the gap filter of `pars train`). A censored length (at least N) proves only
that its prompt is longer than an exact shorter one, so a pair is used only when its shorter member is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pars.predictor.student_head import StudentHead
from pars.predictor.student import StaticStudent


class RefitError(RuntimeError):
    """The refit could not produce a usable head (too few pairs, a non-finite loss)."""


@dataclass(frozen=True)
class RefitSettings:
    steps: int = 100
    pairs_per_step: int = 256
    lr: float = 3e-3
    margin: float = 1.0  # in standard deviations of the live student's scores on the training rows
    threshold: float = 0.2  # lengths closer than this (relative to the longer) are not a pair
    anchor: float = 1e-2  # L2 pull of the head towards the warm start
    min_pairs: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.steps, self.pairs_per_step, self.min_pairs) < 1 or not self.lr > 0 or self.margin <= 0:
            raise ValueError("steps, pairs_per_step and min_pairs must be >= 1; lr and margin > 0")
        if not 0 <= self.threshold < 1 or self.anchor < 0:
            raise ValueError("threshold must be in [0, 1) and anchor >= 0")


def proven_pairs(tokens: np.ndarray, censored: np.ndarray, threshold: float, count: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Up to `count` sampled (longer, shorter) index pairs that the lengths prove: gap >= threshold and the
    shorter one exact (a censored length is a lower bound, so it can only be the longer side)."""
    n = len(tokens)
    first = rng.integers(0, n, 4 * count)
    second = rng.integers(0, n, 4 * count)
    longer = np.where(tokens[first] >= tokens[second], first, second)
    shorter = np.where(longer == first, second, first)
    high, low = tokens[longer].astype(np.float64), tokens[shorter].astype(np.float64)
    gap = np.divide(high - low, high, out=np.zeros_like(high), where=high > 0)
    keep = (gap >= threshold) & (high > low) & ~censored[shorter]
    return longer[keep][:count], shorter[keep][:count]


def refit_head(student: StaticStudent, features: np.ndarray, tokens: np.ndarray, censored: np.ndarray,
               settings: RefitSettings = RefitSettings()) -> StaticStudent:
    """A student with the same vectors and a head continued on (features, tokens, censored)."""
    tokens = np.asarray(tokens)
    censored = np.asarray(censored, dtype=bool)
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    if len(proven_pairs(tokens, censored, settings.threshold, settings.min_pairs, rng)[0]) < settings.min_pairs:
        raise RefitError(f"fewer than {settings.min_pairs} proven pairs among {len(tokens)} logged lengths")
    start = student.score_features(features)
    margin = settings.margin * float(np.std(start) or 1.0)
    head = StudentHead.of(student)
    initial = [p.detach().clone() for p in head.parameters()]
    optimizer = torch.optim.Adam(head.parameters(), lr=settings.lr)
    inputs = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    for _ in range(settings.steps):
        longer, shorter = proven_pairs(tokens, censored, settings.threshold, settings.pairs_per_step, rng)
        rows, index = np.unique(np.concatenate([longer, shorter]), return_inverse=True)
        scores = head(inputs[torch.from_numpy(rows)])  # only the rows this step's pairs use
        loss = nn.functional.margin_ranking_loss(scores[index[:len(longer)]], scores[index[len(longer):]],
                                                 torch.ones(len(longer)), margin=margin)
        pull = sum(((p - p0) ** 2).sum() for p, p0 in zip(head.parameters(), initial))
        loss = loss + settings.anchor * pull
        if not math.isfinite(loss.item()):
            raise RefitError("the refit's loss is not finite")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    weights = {"embeddings": student.embeddings, **head.weights()}
    if not all(np.isfinite(w).all() for w in weights.values()):
        raise RefitError("the refit produced non-finite weights")
    return StaticStudent(student.config, student.vocabulary, weights)
