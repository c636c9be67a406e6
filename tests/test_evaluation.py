"""Evaluation metrics without materialising pairs: equal to the brute-force pair count, linear memory in rows."""

import tracemalloc

import numpy as np
import pytest

from pars.data.pairs import in_batch_pairs
from pars.data.records import LengthRecord
from pars.evaluation import evaluate_scores
from pars.metrics import gap_pair_counts, pairwise_accuracy


def brute_force_accuracy(scores: np.ndarray, lengths: np.ndarray, threshold: float) -> float:
    """Every kept pair built explicitly (what pairwise_accuracy did before it counted by sorting)."""
    pairs = in_batch_pairs(lengths, threshold)
    if pairs.kept == 0:
        return float("nan")
    agreement = np.sign(scores[pairs.first] - scores[pairs.second]) * pairs.sign
    return float(np.mean((agreement > 0) + 0.5 * (agreement == 0)))


@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.5, 0.99])
@pytest.mark.parametrize("seed", range(4))
def test_pairwise_accuracy_equals_the_brute_force_count_with_ties_and_zeros(seed, threshold):
    rng = np.random.default_rng(seed)
    n = 300
    lengths = rng.integers(0, 60, size=n).astype(float)  # many equal lengths and some zeros
    scores = rng.integers(0, 25, size=n).astype(float)  # many tied scores
    scores[rng.choice(n, 5, replace=False)] = np.nan
    assert pairwise_accuracy(scores, lengths, threshold) == brute_force_accuracy(scores, lengths, threshold)
    kept, _, _ = gap_pair_counts(scores, lengths, threshold)
    assert kept == in_batch_pairs(lengths, threshold).kept


def test_pairwise_accuracy_over_label_columns_with_unknown_lengths_equals_the_brute_force_count():
    rng = np.random.default_rng(7)
    lengths = rng.integers(1, 500, size=(120, 4)).astype(float)
    lengths[rng.random(lengths.shape) < 0.3] = np.nan  # a model did not answer that prompt
    scores = rng.normal(size=120)
    assert pairwise_accuracy(scores, lengths, 0.2) == brute_force_accuracy(scores, lengths, 0.2)


def test_pairwise_accuracy_hand_computed_case():
    # lengths 10, 100, 50 with threshold 0.2: all three pairs kept; scores order (0,1) and (0,2) right, (1,2) tied
    assert gap_pair_counts(np.array([0.0, 1.0, 1.0]), np.array([10.0, 100.0, 50.0]), 0.2) == (3, 2, 1)
    assert pairwise_accuracy(np.array([0.0, 1.0, 1.0]), np.array([10.0, 100.0, 50.0]), 0.2) == 2.5 / 3
    assert np.isnan(pairwise_accuracy(np.array([1.0, 2.0]), np.array([10.0, 10.0]), 0.2))  # no kept pair


def test_evaluating_50k_rows_of_one_model_needs_memory_linear_in_rows():
    """All n^2/2 pairs of 50k rows would take over 10 GB; the sort-based count stays far below 100 MB."""
    rng = np.random.default_rng(0)
    n = 50_000
    lengths = rng.integers(1, 2000, size=n)
    scores = np.log(lengths) + rng.normal(scale=1.0, size=n)
    records = [LengthRecord(f"prompt {i}", int(lengths[i]), "m", prompt_id=str(i)) for i in range(n)]
    score_of = {r.prompt: float(s) for r, s in zip(records, scores)}
    tracemalloc.start()
    try:
        evaluation = evaluate_scores(records, lambda r: score_of[r.prompt])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    report = evaluation.per_model["m"]
    assert report.n == n
    assert 0.5 < report.pairwise_accuracy < 1.0 and 0.2 < report.kendall_tau < 1.0


def test_balanced_overall_is_the_mean_over_sources_of_each_sources_mean_over_models():
    from pars.data.records import LengthRecord
    from pars.evaluation import evaluate_scores

    prompts = [f"prompt {i}" for i in range(12)]
    records = [LengthRecord(p, 10 * (i + 1), model, source) for model, source in
               (("a1", "big"), ("a2", "big"), ("a3", "big"), ("b1", "small")) for i, p in enumerate(prompts)]
    # Scores rank "big"'s lengths perfectly; "small"'s model answers in the reverse order.
    evaluation = evaluate_scores(records, lambda r: (1 if r.source == "big" else -1) * r.response_tokens)
    assert evaluation.per_source["big"]["kendall_tau"] == pytest.approx(1.0)
    assert evaluation.per_source["small"]["kendall_tau"] == pytest.approx(-1.0)
    assert evaluation.overall["kendall_tau"] == pytest.approx(0.5)  # (1 + 1 + 1 - 1) / 4 models
    assert evaluation.balanced["kendall_tau"] == pytest.approx(0.0) and evaluation.balanced["sources"] == 2
    assert evaluation.per_source["big"]["models"] == 3 and evaluation.per_source["small"]["n"] == 12
    assert set(evaluation.to_dict()) >= {"balanced", "per_source", "per_model", "kendall_tau"}


def test_prompt_bootstrap_intervals_are_exact_for_a_perfect_ranker_and_wide_on_few_noisy_prompts():
    from pars.evaluation import bootstrap_tau_intervals

    rng = np.random.default_rng(0)
    records = [LengthRecord(f"exact prompt {i}", 10 + i, model, "exact", f"e{i}") for i in range(40) for model in "ab"]
    records += [LengthRecord(f"noisy prompt {i}", int(rng.integers(1, 500)), "c", "noisy", f"n{i}") for i in range(30)]
    noise = {f"noisy prompt {i}": float(rng.normal()) for i in range(30)}

    def score_of(record):
        return float(record.response_tokens) if record.source == "exact" else noise[record.prompt]

    intervals = bootstrap_tau_intervals(records, score_of, rounds=100, seed=1)
    assert set(intervals) == {"exact", "noisy", "balanced"}
    assert intervals["exact"] == pytest.approx((1.0, 1.0))
    low, high = intervals["noisy"]
    point = evaluate_scores(records, score_of).per_source["noisy"]["kendall_tau"]
    assert -1 <= low < point < high <= 1 and high - low > 0.3  # 30 prompts of noise: tau is anyone's guess
    assert intervals["balanced"] == pytest.approx(((1 + low) / 2, (1 + high) / 2), abs=0.05)
    assert bootstrap_tau_intervals(records, score_of, rounds=100, seed=1) == intervals
