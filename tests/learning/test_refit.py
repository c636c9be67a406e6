"""Refitting a real distilled student's head on real lengths, the censored-pair rule, and the swap guard."""

from __future__ import annotations

import numpy as np
import pytest

from pars.learning.guard import MIN_SLICE, compare, tau
from pars.learning.refit import RefitError, RefitSettings, proven_pairs, refit_head
from pars.predictor.student import StaticStudent


def test_the_head_alone_gives_the_students_own_scores(student_dir, gpt4_records):
    student = StaticStudent.load(student_dir)
    prompts = [r.prompt for r in gpt4_records[:50]]
    assert np.allclose(student.score_features(student.features(prompts)), student.score(prompts), atol=1e-5)


def test_a_censored_length_is_only_ever_the_longer_side_of_a_pair():
    tokens = np.array([100, 40, 300, 10])
    censored = np.array([True, False, False, True])
    longer, shorter = proven_pairs(tokens, censored, 0.2, 10_000, np.random.default_rng(0))
    pairs = set(zip(longer.tolist(), shorter.tolist()))
    assert pairs == {(0, 1), (2, 1)}  # never (2, 0): 300 > "at least 100" is not proven; never a pair with 10+


def test_a_refit_on_the_served_models_lengths_ranks_its_held_out_prompts_better(student_dir, gpt4_records):
    student = StaticStudent.load(student_dir)
    prompts = [r.prompt for r in gpt4_records]
    lengths = np.array([r.response_tokens for r in gpt4_records])
    features = student.features(prompts)
    train, held = slice(0, 600), slice(600, None)
    censored = np.zeros(len(prompts), dtype=bool)
    censored[:600:5] = True  # every fifth training length cut: a lower bound only
    refitted = refit_head(student, features[train], lengths[train], censored[train])
    before = tau(student.score_features(features[held]), lengths[held])
    after = tau(refitted.score_features(features[held]), lengths[held])
    # the gain depends on the fixture's student (its 400 distillation prompts are a seeded sample that now
    # includes open/ prompts): 0.15 -> 0.18 with it, +0.05 or more before
    assert after > before + 0.02, (before, after)
    assert np.array_equal(refitted.embeddings, student.embeddings)  # only the head moved
    assert np.allclose(refitted.score(prompts[600:610]), refitted.score_features(features[600:610]), atol=1e-5)


def test_a_refit_refuses_too_few_pairs_and_non_finite_inputs(student_dir, gpt4_records):
    student = StaticStudent.load(student_dir)
    features = student.features([r.prompt for r in gpt4_records[:200]])
    lengths = np.array([r.response_tokens for r in gpt4_records[:200]])
    with pytest.raises(RefitError, match="proven pairs"):
        refit_head(student, features, np.full(200, 100), np.zeros(200, dtype=bool))
    with pytest.raises(RefitError, match="not finite"):
        refit_head(student, np.full_like(features, np.nan), lengths, np.zeros(200, dtype=bool), RefitSettings(steps=3))


def test_the_guard_takes_a_clear_gain_and_leaves_noise_and_small_slices():
    rng = np.random.default_rng(0)
    lengths = rng.lognormal(5, 1, 400)
    weak = np.log(lengths) + rng.normal(0, 3, 400)
    strong = np.log(lengths) + rng.normal(0, 0.5, 400)
    assert compare(weak, strong, lengths).better
    assert not compare(strong, weak, lengths).better
    assert not compare(weak, weak + rng.normal(0, 0.01, 400), lengths).better
    small = compare(weak[:MIN_SLICE - 1], strong[:MIN_SLICE - 1], lengths[:MIN_SLICE - 1])
    assert not small.better and small.n == MIN_SLICE - 1
