import numpy as np
import torch

from pars.data.labels import group_by_prompt
from pars.metrics import pairwise_accuracy
from pars.predictor import Predictor
from pars.predictor.training import TrainSettings, train


def test_frozen_encoder_training_fits_the_head_only_and_learns_the_training_order(gpt4_records):
    train_labels = group_by_prompt(gpt4_records[:48], "per-model")
    val_labels = group_by_prompt(gpt4_records[48:64], "per-model")
    predictor = Predictor.untrained(seed=0)
    encoder_before = {k: v.clone() for k, v in predictor.ranker.encoder.state_dict().items()}
    before = pairwise_accuracy(predictor.score(train_labels.prompts), train_labels.lengths)
    result = train(predictor, train_labels, val_labels,
                   TrainSettings(freeze_encoder=True, frozen_epochs=40, batch_size=16, head_lr=1e-2))
    after = pairwise_accuracy(predictor.score(train_labels.prompts), train_labels.lengths)
    for name, tensor in predictor.ranker.encoder.state_dict().items():
        assert torch.equal(tensor, encoder_before[name]), name
    assert len(result.history) == 40
    assert 1 <= result.best_epoch <= 40
    assert result.history[0].pairs_kept > 0 and result.history[0].pairs_filtered > 0
    assert after > max(before, 0.7)
    assert all(p.requires_grad for p in predictor.ranker.parameters())
    assert np.isfinite(predictor.score(["hello"])).all()
