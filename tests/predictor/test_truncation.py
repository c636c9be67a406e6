"""What the encoder reads of a long prompt: its first max_length tokens, or ("head-tail") its first and last
halves of them, so a question after a pasted text is read too."""

import json

import pytest
import torch

from pars.predictor import Predictor
from pars.predictor.embeddings import EmbeddingCache
from pars.predictor.checkpoint import CheckpointError
from pars.predictor.model import MAX_READ_CHARS, read_ids

PASTE = "the committee met on tuesday and discussed the budget . " * 40
QUESTIONS = ["Summarise it in one line.", "Write a detailed essay of two thousand words about it."]


@pytest.fixture(scope="module")
def head_tail():
    return Predictor.untrained(seed=0, max_length=32, truncation="head-tail")


def test_head_reads_only_the_start_and_head_tail_reads_the_question_at_the_end(head_tail):
    tokenizer = head_tail.tokenizer
    head_rows = read_ids(tokenizer, [PASTE + q for q in QUESTIONS], 32, "head")
    rows = read_ids(tokenizer, [PASTE + q for q in QUESTIONS], 32, "head-tail")
    assert head_rows[0] == head_rows[1] and rows[0] != rows[1]
    assert all(len(row) == 32 for row in head_rows + rows)
    assert rows[0][0] == tokenizer.cls_token_id and rows[0][-1] == tokenizer.sep_token_id
    assert rows[0][:16] == head_rows[0][:16]
    assert tokenizer.decode(rows[1][1:-1]).endswith("the budget. write a detailed essay of two thousand words about it.")


def test_a_prompt_within_max_length_is_read_whole_either_way(head_tail):
    short = ["hi", "What is the capital of France?"]
    assert read_ids(head_tail.tokenizer, short, 32, "head-tail") == read_ids(head_tail.tokenizer, short, 32, "head")


def test_a_prompt_past_the_read_limit_still_ends_with_its_own_last_words(head_tail):
    huge = "x " * MAX_READ_CHARS + "and finally, the real question"
    row = read_ids(head_tail.tokenizer, [huge], 32, "head-tail")[0]
    assert len(row) == 32 and head_tail.tokenizer.decode(row[1:-1]).endswith("x x and finally, the real question")


def test_an_unknown_truncation_is_refused(head_tail):
    with pytest.raises(ValueError, match="truncation must be one of"):
        read_ids(head_tail.tokenizer, ["hi"], 32, "middle")


def test_cached_vectors_are_kept_apart_by_what_the_encoder_reads(head_tail):
    head = Predictor.untrained(seed=0, max_length=32)
    long = [PASTE + QUESTIONS[1]]
    cache = EmbeddingCache()
    torch.testing.assert_close(cache.vectors(head, long), head.embed(long))
    torch.testing.assert_close(cache.vectors(head_tail, long), head_tail.embed(long))
    assert not torch.allclose(head.embed(long), head_tail.embed(long))


def test_a_checkpoint_keeps_its_truncation_and_one_saved_before_it_existed_reads_the_head(head_tail, tmp_path):
    loaded = Predictor.load(head_tail.save(tmp_path / "ht"), precision="fp32")
    assert loaded.config.truncation == "head-tail" and loaded.reading == "32 head-tail"
    older = Predictor.untrained(seed=0, max_length=32).save(tmp_path / "older")
    config = json.loads((older / "pars_config.json").read_text())
    del config["truncation"]
    (older / "pars_config.json").write_text(json.dumps(config))
    assert Predictor.load(older, precision="fp32").config.truncation == "head"


def test_a_checkpoint_with_an_unknown_truncation_fails_at_load_with_one_clear_error(head_tail, tmp_path):
    directory = head_tail.save(tmp_path / "bad")
    config = json.loads((directory / "pars_config.json").read_text())
    (directory / "pars_config.json").write_text(json.dumps({**config, "truncation": "middle"}))
    with pytest.raises(CheckpointError, match="unreadable config.*truncation must be one of"):
        Predictor.load(directory, precision="fp32")
