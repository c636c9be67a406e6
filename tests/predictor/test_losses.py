import math

import pytest
import torch

from pars.predictor.losses import classify_loss, length_buckets, listmle_loss, margin_ranking_loss, pointwise_loss

NAN = float("nan")


def test_margin_loss_matches_a_hand_computed_case():
    scores = torch.tensor([2.0, 0.5, 1.0])
    # (0 longer than 1): max(0, -(2-0.5)+1) = 0; (1 longer than 2): max(0, -(0.5-1)+1) = 1.5;
    # (0 shorter than 2): max(0, (2-1)+1) = 2  -> mean 3.5 / 3
    loss = margin_ranking_loss(scores, torch.tensor([0, 1, 0]), torch.tensor([1, 2, 2]),
                               torch.tensor([1.0, 1.0, -1.0]), margin=1.0)
    assert loss.item() == pytest.approx(3.5 / 3)


def test_margin_loss_with_no_pairs_is_zero_and_differentiable():
    scores = torch.tensor([1.0, 2.0], requires_grad=True)
    empty = torch.tensor([], dtype=torch.long)
    loss = margin_ranking_loss(scores, empty, empty, torch.tensor([]))
    loss.backward()
    assert loss.item() == 0.0


def test_listmle_matches_a_hand_computed_case():
    # true order (longest first): prompt 0 then 1; -log P = [log(e^1 + e^2) - 1] + [2 - 2] = log(1 + e); mean over 2
    loss = listmle_loss(torch.tensor([1.0, 2.0]), torch.tensor([[10.0], [5.0]]))
    assert loss.item() == pytest.approx(math.log(1 + math.e) / 2)


def test_listmle_skips_missing_lengths_and_prefers_the_right_order():
    lengths = torch.tensor([[10.0, NAN], [5.0, 3.0], [1.0, NAN]])
    right = listmle_loss(torch.tensor([3.0, 2.0, 1.0]), lengths)
    wrong = listmle_loss(torch.tensor([1.0, 2.0, 3.0]), lengths)
    assert right.item() < wrong.item()


def test_pointwise_loss_is_huber_on_log_length():
    assert pointwise_loss(torch.tensor([0.0, math.log(11)]), torch.tensor([[0.0], [10.0]])).item() == pytest.approx(0.0)
    # error of 1 at delta 1: 0.5 * 1^2; the NaN entry is ignored
    assert pointwise_loss(torch.tensor([1.0]), torch.tensor([[0.0, NAN]])).item() == pytest.approx(0.5)


def test_classify_loss_is_cross_entropy_over_length_buckets():
    edges = torch.tensor([10.0, 100.0])
    assert length_buckets(torch.tensor([0.0, 10.0, 50.0, 100.0, 5000.0]), edges).tolist() == [0, 1, 1, 2, 2]
    loss = classify_loss(torch.zeros(1, 3), torch.tensor([[50.0]]), edges)
    assert loss.item() == pytest.approx(math.log(3))
