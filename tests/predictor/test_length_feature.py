"""The head's length feature: the whole prompt's length, read beside what the encoder sees of its start."""

import json

import numpy as np
import pytest
import torch

from pars.data.labels import LabelledPrompts
from pars.predictor import Predictor
from pars.predictor.model import MAX_READ_CHARS, length_feature
from pars.predictor.training import TrainSettings, train

# the same first MAX_READ_CHARS characters (all the encoder reads), different whole lengths
LONG, LONGER = "a word " * (MAX_READ_CHARS // 7 + 10), "a word " * (MAX_READ_CHARS // 2)


@pytest.fixture(scope="module")
def with_feature():
    return Predictor.untrained(seed=0, length_feature=True)


def test_the_feature_grows_with_the_whole_prompt_not_its_cut():
    values = length_feature(["", "hi", LONG, LONGER])[:, 0]
    assert values.shape == (4,) and torch.all(values[1:] > values[:-1])


def test_the_head_reads_the_whole_length_the_encoder_does_not(with_feature):
    plain = Predictor.untrained(seed=0)
    torch.testing.assert_close(with_feature.embed([LONG]), with_feature.embed([LONGER]))
    assert plain.score([LONG])[0] == plain.score([LONGER])[0]
    assert with_feature.score([LONG])[0] != with_feature.score([LONGER])[0]
    assert with_feature.ranker.head.in_features == plain.ranker.head.in_features + 1


def test_a_checkpoint_keeps_its_feature_and_one_saved_before_it_existed_loads_without(with_feature, tmp_path):
    directory = with_feature.save(tmp_path / "with")
    loaded = Predictor.load(directory, precision="fp32")
    assert loaded.config.length_feature and loaded.ranker.length_feature
    np.testing.assert_array_equal(loaded.score(["hi", LONG, LONGER]), with_feature.score(["hi", LONG, LONGER]))
    older = Predictor.untrained(seed=0).save(tmp_path / "older")
    config = json.loads((older / "pars_config.json").read_text())
    del config["length_feature"]
    (older / "pars_config.json").write_text(json.dumps(config))
    assert not Predictor.load(older, precision="fp32").ranker.length_feature


def test_training_learns_to_rank_long_prompts_by_their_length():
    # the answer's length follows the prompt's, which the encoder cannot see past its first tokens
    prompts = [f"Summarise this text, number {i}: " + "lorem ipsum dolor " * (20 * (i + 1) ** 2) for i in range(12)]
    labels = LabelledPrompts(prompts, ["m"], np.array([[50.0 * (i + 1)] for i in range(12)]))
    unseen = [f"Please summarise document {j}: " + "sit amet consectetur " * reps for j, reps in
              enumerate((40, 300, 1200, 3000))]
    predictor = Predictor.untrained(seed=0, length_feature=True)
    train(predictor, labels, labels, TrainSettings(freeze_encoder=True, head_epochs=30, batch_size=12, head_lr=1e-2))
    assert predictor.ranker.head.weight[0, -1] > 0
    assert np.all(np.diff(predictor.score(unseen)) > 0)
    fine_tuned = Predictor.untrained(seed=0, length_feature=True)
    train(fine_tuned, labels, labels, TrainSettings(head_epochs=30, epochs=1, batch_size=12, head_lr=1e-2))
    assert np.all(np.diff(fine_tuned.score(unseen)) > 0)
