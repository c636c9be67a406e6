import numpy as np
import pytest
import torch

from pars.data.labels import group_by_prompt
from pars.metrics import pairwise_accuracy
from pars.predictor import Predictor
from pars.predictor.training import TrainSettings, initial_head_bias, train


@pytest.fixture(scope="module")
def small_labels(gpt4_records):
    return group_by_prompt(gpt4_records[:48], "per-model"), group_by_prompt(gpt4_records[48:64], "per-model")


@pytest.mark.parametrize("loss", ["margin", "listmle", "pointwise", "classify"])
def test_frozen_encoder_training_fits_the_head_only_and_learns_the_training_order(small_labels, loss):
    train_labels, val_labels = small_labels
    predictor = Predictor.untrained(seed=0, head_outputs=7 if loss == "classify" else 1)
    encoder_before = {k: v.clone() for k, v in predictor.ranker.encoder.state_dict().items()}
    before = pairwise_accuracy(predictor.score(train_labels.prompts), train_labels.lengths)
    result = train(predictor, train_labels, val_labels,
                   TrainSettings(loss=loss, freeze_encoder=True, frozen_epochs=40, batch_size=16, head_lr=1e-2))
    after = pairwise_accuracy(predictor.score(train_labels.prompts), train_labels.lengths)
    for name, tensor in predictor.ranker.encoder.state_dict().items():
        assert torch.equal(tensor, encoder_before[name]), name
    assert len(result.history) == 40
    assert 1 <= result.best_epoch <= 40
    # bucket classification is coarse (a few buckets cover these lengths), so it only has to improve clearly
    assert after > (before + 0.05 if loss == "classify" else max(before, 0.7)), f"{loss}: {before:.3f} -> {after:.3f}"
    assert all(p.requires_grad for p in predictor.ranker.parameters())
    assert np.isfinite(predictor.score(["hello"])).all()


def test_margin_training_counts_kept_and_filtered_pairs(small_labels):
    train_labels, val_labels = small_labels
    result = train(Predictor.untrained(seed=0), train_labels, val_labels,
                   TrainSettings(freeze_encoder=True, frozen_epochs=1, batch_size=16))
    epoch = result.history[0]
    assert epoch.pairs_kept > 0 and epoch.pairs_filtered > 0
    assert epoch.pairs_kept + epoch.pairs_filtered == 3 * (16 * 15 // 2)


def test_pointwise_head_starts_at_the_mean_log_length_ignoring_missing_labels():
    lengths = np.array([[0.0, np.nan], [np.e ** 2 - 1, np.nan]])
    assert initial_head_bias("pointwise", lengths, (10.0,)) == pytest.approx([1.0])


def test_classify_head_starts_at_smoothed_log_bucket_shares():
    lengths = np.array([[5.0], [50.0], [50.0], [500.0], [np.nan]])  # buckets 0, 1, 1, 2
    expected = np.log(np.array([2, 3, 2]) / 7)
    assert initial_head_bias("classify", lengths, (10.0, 100.0)) == pytest.approx(expected)


def test_ranking_losses_keep_the_fresh_head_bias():
    assert initial_head_bias("margin", np.ones((2, 1)), ()) is None
    assert initial_head_bias("listmle", np.ones((2, 1)), ()) is None
