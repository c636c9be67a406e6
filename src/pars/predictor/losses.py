"""Training losses as pure functions over tensors: pairwise margin (PARS), ListMLE, pointwise, classify.

Shapes: `scores` [batch] (one score per prompt), `lengths` [batch, labels] with NaN where a prompt has no
length for a label (model); pairs come from `pars.data.pairs.in_batch_pairs`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def margin_ranking_loss(scores: torch.Tensor, first: torch.Tensor, second: torch.Tensor,
                        sign: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """PARS: mean over pairs of max(0, -sign * (s_first - s_second) + margin).

    scores [batch]; first, second [pairs] indices into the batch; sign [pairs] +1 if first is longer.
    """
    if first.numel() == 0:
        return scores.sum() * 0.0
    return F.margin_ranking_loss(scores[first], scores[second], sign.to(scores.dtype), margin=margin)


def listmle_loss(scores: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """ListMLE (Xia et al. 2008) per label column over the prompts of the batch, averaged over columns.

    For each column, sort the prompts that have a length by true length, longest first, and take
    -log P(order) = sum_i [logsumexp(s_i, ..., s_n) - s_i]. Columns with fewer than 2 lengths are skipped.
    """
    losses = []
    for column in range(lengths.shape[1]):
        known = ~torch.isnan(lengths[:, column])
        if int(known.sum()) < 2:
            continue
        true = lengths[known, column]
        ordered = scores[known][torch.argsort(true, descending=True, stable=True)]  # [n]
        tail_logsumexp = torch.logcumsumexp(ordered.flip(0), dim=0).flip(0)  # [n]
        losses.append((tail_logsumexp - ordered).sum() / ordered.numel())
    if not losses:
        return scores.sum() * 0.0
    return torch.stack(losses).mean()


def pointwise_loss(scores: torch.Tensor, lengths: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Huber regression of log(1 + length), over every known (prompt, label) entry (SSJF/S3 style)."""
    known = ~torch.isnan(lengths)
    target = torch.log1p(lengths[known])
    predicted = scores.unsqueeze(1).expand_as(lengths)[known]
    return F.huber_loss(predicted, target.to(scores.dtype), delta=delta)


def length_buckets(lengths: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Bucket index of each length: number of edges at or below it (0 .. len(edges))."""
    return torch.bucketize(lengths, edges, right=True)


def classify_loss(logits: torch.Tensor, lengths: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over length buckets (S3 style); logits [batch, buckets], edges [buckets - 1] in tokens."""
    known = ~torch.isnan(lengths)
    targets = length_buckets(lengths[known], edges)
    rows = torch.nonzero(known, as_tuple=True)[0]
    return F.cross_entropy(logits[rows], targets)
