"""The student's word vocabulary: deterministic rows, and hashed rows for unknown words."""

import pytest

from pars.predictor.words import WordVocabulary, words_of


def test_words_are_lower_cased_words_and_punctuation_marks_cut_at_the_limit():
    assert words_of("Write a POEM, please!", 10) == ["write", "a", "poem", ",", "please", "!"]
    assert words_of("one two three", 2) == ["one", "two"]


def test_known_words_get_their_own_rows_and_unknown_ones_a_stable_hashed_row():
    vocabulary = WordVocabulary(["write", "a"], buckets=8)
    assert vocabulary.rows("Write a", 10) == [0, 1]
    unknown = vocabulary.row("zyzzyva")
    assert 2 <= unknown < 10
    assert WordVocabulary(["write", "a"], buckets=8).row("zyzzyva") == unknown  # the same in a fresh instance


def test_build_keeps_the_most_frequent_words_seen_often_enough_in_a_deterministic_order():
    texts = ["b a a", "a b c", "c b d"]
    vocabulary = WordVocabulary.build(texts, max_size=2, min_count=2, buckets=4, read_words=10)
    assert vocabulary.words == ["a", "b"]  # a and b three times, c twice (cut by max_size), d once
    assert WordVocabulary.build(list(reversed(texts)), 2, 2, 4, 10).words == vocabulary.words


def test_a_vocabulary_survives_its_dict_and_a_malformed_one_is_refused():
    vocabulary = WordVocabulary(["x", "y"], buckets=3)
    again = WordVocabulary.from_dict(vocabulary.to_dict())
    assert again.rows("x y zz", 5) == vocabulary.rows("x y zz", 5)
    with pytest.raises(ValueError):
        WordVocabulary.from_dict({"words": "x y", "buckets": 3})
