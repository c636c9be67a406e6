"""Scoring cost options: token-sorted dynamic batches and bf16 (docs/vllm.md, `pars bench overhead`)."""

import copy

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from pars.predictor import Predictor
from pars.predictor.model import PackedLinear, bf16_is_native, length_batches, pack_linears, resolve_precision

# Lengths from 0 to past max_length, deliberately not in length order.
PROMPTS = ["Write a detailed essay on the causes of World War I, with sources.", "Hi", "",
           "word " * 400, "What is 2 + 2?", "Summarise the plot of Hamlet in three sentences for a child.",
           "x", "Translate 'good morning' into French, German, Spanish and Italian, then explain each."]


@pytest.fixture(scope="module")
def predictor():
    return Predictor.untrained(seed=0)


def test_token_sorted_batches_score_like_one_prompt_at_a_time_in_input_order(predictor, gpt4_records):
    prompts = PROMPTS + [r.prompt for r in gpt4_records[:24]]
    alone = np.array([predictor.score([p])[0] for p in prompts])
    for batch_size in (5, 32):
        np.testing.assert_allclose(predictor.score(prompts, batch_size=batch_size), alone, atol=1e-4)
    vectors = predictor.embed(prompts[:6], batch_size=4)
    assert vectors.dtype == torch.float32 and vectors.shape == (6, predictor.ranker.encoder.config.hidden_size)


def test_bf16_scores_rank_like_fp32(predictor, gpt4_records):
    prompts = [r.prompt for r in gpt4_records[100:140]]
    fp32 = predictor.score(prompts)
    predictor.precision = "bf16"
    try:
        bf16 = predictor.score(prompts)
    finally:
        predictor.precision = "fp32"
    assert bf16.dtype == np.float32
    assert spearmanr(fp32, bf16).statistic > 0.95


def test_a_ranker_in_train_mode_scores_in_fp32(predictor):
    """The training loop scores validation prompts with `score`: training must not see bf16."""
    fp32 = predictor.score(PROMPTS)
    predictor.precision = "bf16"
    predictor.ranker.train()
    try:
        np.testing.assert_array_equal(predictor.score(PROMPTS), fp32)
    finally:
        predictor.precision = "fp32"
        predictor.ranker.eval()


def test_precision_is_checked_and_auto_resolves(predictor, tmp_path):
    assert resolve_precision("auto") in ("fp32", "bf16")
    assert predictor.precision == "fp32"  # untrained = the start of training
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, got 'fp16'"):
        predictor.precision = "fp16"
    with pytest.raises(ValueError, match="precision must be one of"):
        Predictor.load(tmp_path, precision="int8")
    assert predictor.precision == "fp32"


def test_the_bf16_copy_is_made_once_and_remade_when_the_weights_change():
    predictor = Predictor.untrained(seed=0)
    first = predictor.scoring_ranker("bf16")
    assert predictor.scoring_ranker("bf16") is first and predictor.scoring_ranker("fp32") is predictor.ranker
    assert next(first.parameters()).dtype == torch.bfloat16
    with torch.no_grad():
        predictor.ranker.encoder.embeddings.word_embeddings.weight.mul_(0.5)  # as an optimizer step would
    assert predictor.scoring_ranker("bf16") is not first


def test_length_batches_cover_each_prompt_once_and_do_not_pad_short_prompts_to_a_long_one():
    lengths = list(np.random.default_rng(0).integers(1, 129, 200))
    batches = length_batches(lengths, batch_size=32)
    assert sorted(np.concatenate(batches).tolist()) == list(range(200))
    assert all(1 <= len(b) <= 32 for b in batches)
    assert [sorted(b.tolist()) for b in length_batches([5] * 8 + [128], 32)] == [list(range(8)), [8]]
    assert [len(b) for b in length_batches([40] * 64, 32)] == [32, 32]  # equal lengths: full batches


def test_packed_linears_compute_what_plain_bf16_linears_do(predictor):
    plain = copy.deepcopy(predictor.ranker).to(torch.bfloat16).eval()
    packed = pack_linears(copy.deepcopy(plain))
    if bf16_is_native():  # where oneDNN has AMX/AVX512-BF16 kernels, the packing must actually happen
        assert any(isinstance(m, PackedLinear) for m in packed.modules())
    batch = predictor.tokenize(PROMPTS)
    with torch.no_grad():
        expected = plain.embed(batch["input_ids"], batch["attention_mask"])
        torch.testing.assert_close(packed.embed(batch["input_ids"], batch["attention_mask"]), expected,
                                   atol=1e-3, rtol=1e-3)
