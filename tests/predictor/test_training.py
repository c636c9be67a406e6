import numpy as np
import pytest
import torch

from pars.data.labels import LabelledPrompts, group_by_prompt
from pars.jobs import concat_labels
from pars.metrics import pairwise_accuracy
from pars.predictor import Predictor
from pars.predictor import training
from pars.predictor.embeddings import EmbeddingCache
from pars.predictor.training import Stage, TrainSettings, epoch_batches, initial_head_bias, source_groups, train


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
                   TrainSettings(loss=loss, freeze_encoder=True, head_epochs=40, batch_size=16, head_lr=1e-2))
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
                   TrainSettings(freeze_encoder=True, head_epochs=1, batch_size=16))
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


def test_default_recipe_is_a_linear_probe_then_fine_tuning():
    assert TrainSettings().stages() == (Stage("linear_probe", 60, head_only=True), Stage("fine_tune", 3, head_only=False))
    assert TrainSettings(head_epochs=0).stages() == (Stage("fine_tune", 3, head_only=False),)
    assert TrainSettings(freeze_encoder=True, head_epochs=5).stages() == (Stage("linear_probe", 5, head_only=True),)
    with pytest.raises(ValueError, match="nothing to train"):
        TrainSettings(freeze_encoder=True, head_epochs=0)
    with pytest.raises(ValueError, match=">= 0"):
        TrainSettings(head_epochs=-1)


def scripted_accuracy(monkeypatch, accuracies):
    """Validation pair accuracy per epoch, in order, whatever the weights: which epoch is best is then known."""
    left = list(accuracies)
    monkeypatch.setattr(training, "pairwise_accuracy", lambda *args, **kwargs: left.pop(0))


def epoch_end_snapshots(predictor, steps_per_epoch):
    """An `on_step` hook and the list it fills with the ranker's weights at the end of each epoch."""
    snapshots = []

    def on_step(step, total, loss):
        if step % steps_per_epoch == 0:
            snapshots.append({k: v.clone() for k, v in predictor.ranker.state_dict().items()})

    return on_step, snapshots


def assert_same_weights(actual, expected):
    assert actual.keys() == expected.keys()
    for name in actual:
        assert torch.equal(actual[name], expected[name]), name


def test_head_only_training_ends_at_the_best_validation_epoch_not_the_last(small_labels, monkeypatch):
    train_labels, val_labels = small_labels  # 48 prompts in batches of 16: 3 steps an epoch
    predictor = Predictor.untrained(seed=0)
    on_step, snapshots = epoch_end_snapshots(predictor, 3)
    scripted_accuracy(monkeypatch, [0.5, 0.9, 0.6])
    result = train(predictor, train_labels, val_labels, TrainSettings(freeze_encoder=True, head_epochs=3,
                                                                      batch_size=16, head_lr=1e-2), on_step)
    assert (result.best_stage, result.best_epoch) == ("linear_probe", 2)
    assert_same_weights(predictor.ranker.state_dict(), snapshots[1])
    assert not torch.equal(predictor.ranker.head.weight, snapshots[2]["head.weight"])  # the last epoch moved on


def test_fine_tuning_that_never_beats_the_linear_probe_leaves_the_probe_weights(small_labels, monkeypatch):
    train_labels, val_labels = small_labels
    predictor = Predictor.untrained(seed=0)
    encoder_before = {k: v.clone() for k, v in predictor.ranker.encoder.state_dict().items()}
    on_step, snapshots = epoch_end_snapshots(predictor, 3)
    scripted_accuracy(monkeypatch, [0.5, 0.9, 0.6, 0.7])  # 3 linear-probe epochs, then 1 fine-tuning epoch
    result = train(predictor, train_labels, val_labels, TrainSettings(head_epochs=3, epochs=1, batch_size=16), on_step)
    assert [(h.stage, h.epoch) for h in result.history] == [("linear_probe", 1), ("linear_probe", 2),
                                                             ("linear_probe", 3), ("fine_tune", 1)]
    assert (result.best_stage, result.best_epoch) == ("linear_probe", 2)
    assert not torch.equal(snapshots[3]["encoder.embeddings.word_embeddings.weight"],
                           encoder_before["embeddings.word_embeddings.weight"])  # fine-tuning did move the encoder
    assert_same_weights(predictor.ranker.state_dict(), snapshots[1])
    assert all(p.requires_grad for p in predictor.ranker.parameters())


def test_head_epochs_0_fine_tunes_from_the_fresh_head_without_a_probe(small_labels):
    train_labels, val_labels = small_labels
    result = train(Predictor.untrained(seed=0), train_labels, val_labels,
                   TrainSettings(head_epochs=0, epochs=1, batch_size=16))
    assert [(h.stage, h.epoch) for h in result.history] == [("fine_tune", 1)]
    assert (result.best_stage, result.best_epoch) == ("fine_tune", 1)


def test_head_only_training_reads_the_injected_embedding_cache(small_labels, monkeypatch):
    train_labels, val_labels = small_labels
    predictor = Predictor.untrained(seed=0)
    embeddings = EmbeddingCache()
    embeddings.vectors(predictor, train_labels.prompts + val_labels.prompts)
    filled = len(embeddings)

    def no_encoding(*args, **kwargs):
        raise AssertionError("the encoder ran although every vector was in the injected cache")

    monkeypatch.setattr(Predictor, "embed", no_encoding)
    train(predictor, train_labels, val_labels, TrainSettings(freeze_encoder=True, head_epochs=2, batch_size=16),
          embeddings=embeddings)
    assert len(embeddings) == filled


def test_by_source_batches_hold_one_sources_prompts_and_pass_every_prompt_once():
    nan = np.nan
    # consensus labels of two sources: rows 0-4 have only column 0, rows 5-11 only column 1
    lengths = np.array([[10.0, nan]] * 5 + [[nan, 20.0]] * 7)
    groups = source_groups(lengths)
    assert sorted(map(tuple, groups)) == [(0, 1, 2, 3, 4), (5, 6, 7, 8, 9, 10, 11)]
    batches = epoch_batches(groups, batch_size=3, rng=np.random.default_rng(0))
    assert len(batches) == 2 + 3  # ceil(5/3) + ceil(7/3)
    assert sorted(np.concatenate(batches).tolist()) == list(range(12))
    for batch in batches:
        assert len({tuple(~np.isnan(lengths[i])) for i in batch}) == 1


def test_balanced_batches_give_every_source_the_steps_of_the_largest_and_each_its_every_prompt():
    groups = [np.arange(0, 10), np.arange(10, 13), np.arange(13, 14)]
    batches = epoch_batches(groups, batch_size=4, rng=np.random.default_rng(0), equal=True)
    assert len(batches) == 3 * 3  # ceil(10/4) batches for each of the 3 sources
    for group in groups:
        mine = [b for b in batches if set(b.tolist()) <= set(group.tolist())]
        assert len(mine) == 3 and sum(len(b) for b in mine) == 10
        assert set(np.concatenate(mine).tolist()) == set(group.tolist())
    assert sum(len(b) for b in batches) == 30  # no batch mixes sources


def test_mixed_batches_are_one_shuffle_cut_in_order():
    batches = epoch_batches([np.arange(10)], batch_size=4, rng=np.random.default_rng(3))
    order = np.random.default_rng(3).permutation(10)
    assert [b.tolist() for b in batches] == [order[:4].tolist(), order[4:8].tolist(), order[8:].tolist()]


def test_by_source_training_uses_every_step_on_usable_pairs(gpt4_records):
    """Two label columns with disjoint prompts: mixed batches waste the cross-column pairs, by-source ones do not."""
    first, second = group_by_prompt(gpt4_records[:24], "per-model"), group_by_prompt(gpt4_records[24:48], "per-model")
    labels = concat_labels(first, second)
    kept = {}
    for batching in ("mixed", "by-source"):
        result = train(Predictor.untrained(seed=0), labels, labels,
                       TrainSettings(freeze_encoder=True, head_epochs=2, batch_size=8, batching=batching))
        kept[batching] = sum(e.pairs_kept + e.pairs_filtered for e in result.history)
    assert kept["by-source"] > kept["mixed"]
    with pytest.raises(ValueError, match="batching"):
        TrainSettings(batching="random")


def test_fine_tuning_forward_encodes_length_sorted_parts_and_returns_the_batch_in_its_own_order(small_labels):
    train_labels, val_labels = small_labels
    predictor = Predictor.untrained(seed=0)
    prompts = ["hi", "a " * 300, "short question?", "word " * 40] + train_labels.prompts[:4]
    data = LabelledPrompts(prompts, ["consensus"], np.ones((len(prompts), 1)))
    forward, _ = training.stage_inputs(predictor, Stage("fine_tune", 1, False), data, val_labels, EmbeddingCache())
    idx = np.array([1, 0, 5, 3, 2, 7, 4, 6])
    predictor.ranker.eval()  # no dropout: the parts must equal one padded batch up to float rounding
    parted = forward(idx)
    ordered = [prompts[i] for i in idx]
    batch = predictor.tokenize(ordered)  # one batch, padded to its longest prompt
    whole = predictor.ranker(batch["input_ids"], batch["attention_mask"], training.length_feature(ordered))
    assert parted.shape == whole.shape == (len(idx), 1)
    assert torch.allclose(parted, whole, atol=1e-5)
    parted.sum().backward()
    assert predictor.ranker.encoder.embeddings.word_embeddings.weight.grad is not None
