import math

import pytest

from pars.bench.references import crowd_median, prompt_length, second_run
from pars.data.records import LengthRecord


def rec(prompt: str, model: str, length: int) -> LengthRecord:
    return LengthRecord(prompt, length, model)


RECORDS = [rec("Write a poem.", "a", 10), rec("write a poem", "b", 100), rec("Write a poem!", "c", 1000),
           rec("Hi?", "a", 5), rec("Only one model saw this", "a", 7)]


def test_prompt_length_counts_characters():
    assert prompt_length(rec("abcd", "a", 1)) == 4.0


def test_crowd_median_uses_only_the_other_models_of_the_same_normalised_prompt():
    score = crowd_median(RECORDS)
    # model a's record: median of b and c in log space = mean of log(101) and log(1001)
    assert score(RECORDS[0]) == pytest.approx((math.log(101) + math.log(1001)) / 2)
    assert score(RECORDS[1]) == pytest.approx((math.log(11) + math.log(1001)) / 2)


def test_crowd_median_is_nan_when_no_other_model_answered():
    assert math.isnan(crowd_median(RECORDS)(RECORDS[4]))


def test_second_run_keeps_shared_prompts_and_scores_by_the_other_runs_length():
    rows, score = second_run(RECORDS, "a", "c")
    assert rows == [RECORDS[0]]
    assert score(rows[0]) == pytest.approx(math.log(1001))


def test_the_same_text_in_another_source_is_not_part_of_the_crowd():
    records = [LengthRecord("Hi?", 5, "a", "s1"), LengthRecord("Hi?", 50, "b", "s2")]
    assert math.isnan(crowd_median(records)(records[0]))


def test_second_run_without_shared_prompts_raises():
    with pytest.raises(ValueError, match="no common prompt"):
        second_run(RECORDS, "a", "missing-model")
