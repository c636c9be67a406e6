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

from pars.predictor.student import StaticStudent


class RefitError(RuntimeError):
    """The refit could not produce a usable head (too few pairs, a non-finite loss)."""


@dataclass(frozen=True)
class RefitSettings:
    steps: int = 300
    pairs_per_step: int = 1024
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
    hidden = nn.Linear(*student.hidden_weight.shape)
    out = nn.Linear(student.out_weight.shape[0], 1)
    with torch.no_grad():
        hidden.weight.copy_(torch.from_numpy(student.hidden_weight.T.copy()))
        hidden.bias.copy_(torch.from_numpy(student.hidden_bias))
        out.weight.copy_(torch.from_numpy(student.out_weight[None, :].copy()))
        out.bias.fill_(student.out_bias)
    initial = [p.detach().clone() for p in (*hidden.parameters(), *out.parameters())]
    optimizer = torch.optim.Adam([*hidden.parameters(), *out.parameters()], lr=settings.lr)
    inputs = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    for _ in range(settings.steps):
        longer, shorter = proven_pairs(tokens, censored, settings.threshold, settings.pairs_per_step, rng)
        scores = out(nn.functional.gelu(hidden(inputs), approximate="tanh"))[:, 0]
        loss = nn.functional.margin_ranking_loss(scores[longer], scores[shorter], torch.ones(len(longer)),
                                                 margin=margin)
        pull = sum(((p - p0) ** 2).sum() for p, p0 in zip((*hidden.parameters(), *out.parameters()), initial))
        loss = loss + settings.anchor * pull
        if not math.isfinite(loss.item()):
            raise RefitError("the refit's loss is not finite")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    weights = {"embeddings": student.embeddings, "hidden_weight": hidden.weight.detach().numpy().T.copy(),
               "hidden_bias": hidden.bias.detach().numpy().copy(), "out_weight": out.weight.detach().numpy()[0].copy(),
               "out_bias": out.bias.detach().numpy().copy()}
    if not all(np.isfinite(w).all() for w in weights.values()):
        raise RefitError("the refit produced non-finite weights")
    return StaticStudent(student.config, student.vocabulary, weights)
