"""The open models' sampled lengths (data/open, CASTILLO) and the noise ceiling they give."""

import gzip
import shutil

import numpy as np
import pytest

from pars.data import DataError
from pars.data.open_models import DEGENERATE_TOKENS, OPEN_SOURCE, by_model, load_open, self_agreement
from pars.paths import bundled_data_dir

OPEN = bundled_data_dir() / "open"


def test_the_bundled_open_lengths_load_with_capped_samples_and_truncated_prompts_left_out():
    rows = load_open(OPEN)
    models = by_model(rows)
    assert len(models) == 13 and "Llama-3.1-8B-Instruct" in models
    assert all(5 <= len(r.samples) <= 10 and max(r.samples) < DEGENERATE_TOKENS for r in rows)
    assert len({r.dataset for r in rows}) == 7
    # 26,683 rows less the 120 truncated and those left with under 5 usable samples
    assert 26_400 < len(rows) < 26_683 - 120
    record = rows[0].record()
    assert record.source == OPEN_SOURCE and record.response_tokens == round(np.mean(rows[0].samples))


def test_a_row_naming_a_missing_prompt_or_bad_samples_is_refused_with_its_line(tmp_path):
    shutil.copy(OPEN / "castillo_prompts.jsonl", tmp_path)
    with gzip.open(OPEN / "castillo_lengths.csv.gz", "rt") as handle:
        header, first = handle.readline(), handle.readline()
    lengths = tmp_path / "castillo_lengths.csv.gz"
    with gzip.open(lengths, "wt") as handle:
        handle.write(header + first.replace("castillo-", "nowhere-", 1))
    with pytest.raises(DataError, match=r"castillo_lengths.csv.gz:2: prompt_id nowhere-"):
        load_open(tmp_path)
    samples = first.split(",")[header.split(",").index("samples")]
    with gzip.open(lengths, "wt") as handle:
        handle.write(header + first.replace(samples, "12 many 40", 1))
    with pytest.raises(DataError, match=r":2: samples must be integers"):
        load_open(tmp_path)


def test_self_agreement_is_one_for_a_model_that_always_answers_alike_and_near_zero_for_pure_noise():
    rng = np.random.default_rng(0)
    steady = [[length] * 10 for length in rng.permutation(200) + 1]
    assert self_agreement(steady) == pytest.approx(1.0)
    noise = rng.integers(1, 1000, size=(300, 10)).tolist()
    assert abs(self_agreement(noise)) < 0.05
    spread = [(base + rng.normal(0, 40, 10)).clip(1).tolist() for base in rng.uniform(0, 400, 300)]
    assert 0.6 < self_agreement(spread) < 0.95
