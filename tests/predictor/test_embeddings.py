"""EmbeddingCache: the vectors `Predictor.embed` gives, each prompt encoded once per max_length."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from pars.jobs import evaluate_predictor
from pars.predictor import Predictor
from pars.predictor.embeddings import EmbeddingCache

PROMPTS = ["a short prompt", "a somewhat longer prompt about ranking", "a short prompt"]


@pytest.fixture(scope="module")
def predictor():
    return Predictor.untrained(max_length=32)


def counting_embed(monkeypatch):
    """Patch `Predictor.embed` to record the prompts of each call; returns the list of calls."""
    calls, embed = [], Predictor.embed

    def spy(self, prompts, *args, **kwargs):
        calls.append(list(prompts))
        return embed(self, prompts, *args, **kwargs)

    monkeypatch.setattr(Predictor, "embed", spy)
    return calls


def test_a_fresh_cache_gives_exactly_what_embed_gives(predictor):
    assert torch.equal(EmbeddingCache().vectors(predictor, PROMPTS), predictor.embed(PROMPTS))


def test_only_prompts_not_seen_before_are_encoded(predictor, monkeypatch):
    embeddings = EmbeddingCache()
    first = embeddings.vectors(predictor, PROMPTS)
    calls = counting_embed(monkeypatch)
    again = embeddings.vectors(predictor, ["a new prompt", PROMPTS[1], PROMPTS[0]])
    assert calls == [["a new prompt"]]
    assert torch.equal(again[1:], first[[1, 0]])
    assert len(embeddings) == 3


def test_another_max_length_is_another_entry(predictor, monkeypatch):
    embeddings = EmbeddingCache()
    embeddings.vectors(predictor, PROMPTS[:1])
    calls = counting_embed(monkeypatch)
    shorter = Predictor(replace(predictor.config, max_length=4), predictor.tokenizer, predictor.ranker)
    embeddings.vectors(shorter, PROMPTS[:1])
    assert calls == [PROMPTS[:1]] and len(embeddings) == 2


def test_no_prompts_give_an_empty_matrix(predictor):
    assert EmbeddingCache().vectors(predictor, []).shape == (0, predictor.ranker.encoder.config.hidden_size)


def test_a_disk_cache_written_once_serves_a_later_run_without_encoding(predictor, tmp_path, monkeypatch):
    from pars.predictor.embeddings import disk_cache

    first = disk_cache(tmp_path, predictor)
    vectors = first.vectors(predictor, PROMPTS)
    assert first.encoded == len(PROMPTS)  # the repeated prompt too: one embed call, as before
    first.save()
    calls = counting_embed(monkeypatch)
    later = disk_cache(tmp_path, predictor)  # a new run: same encoder, same file
    assert torch.equal(later.vectors(predictor, PROMPTS), vectors)
    assert calls == [] and later.encoded == 0
    other = disk_cache(tmp_path, Predictor.untrained(max_length=32, seed=1))  # same weights: same file
    assert other.path == later.path
    finetuned = Predictor.untrained(max_length=32)
    with torch.no_grad():
        next(finetuned.ranker.encoder.parameters()).add_(1.0)  # changed encoder weights: a file of their own
    assert disk_cache(tmp_path, finetuned).path != later.path


def test_scores_from_the_cache_are_the_predictors_own_scores(predictor):
    cache = EmbeddingCache()
    cached = cache.scores(predictor, PROMPTS)
    assert cached.shape == (len(PROMPTS),)
    assert np.allclose(cached, predictor.score(PROMPTS), atol=1e-4)


def test_evaluating_from_the_cache_gives_the_predictors_own_evaluation(predictor, gpt4_records):
    rows = gpt4_records[:40]
    direct = evaluate_predictor(predictor, rows).overall
    cached = evaluate_predictor(predictor, rows, embeddings=EmbeddingCache()).overall
    assert cached["n"] == direct["n"] == 40
    assert cached["kendall_tau"] == pytest.approx(direct["kendall_tau"], abs=1e-3)
