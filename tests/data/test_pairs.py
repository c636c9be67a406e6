import itertools

import numpy as np

from pars.data.pairs import in_batch_pairs, length_gap_ratio


def test_length_gap_ratio_is_relative_to_the_longer():
    assert length_gap_ratio(80, 100) == 0.2
    assert length_gap_ratio(100, 80) == 0.2
    assert length_gap_ratio(0, 0) == 0.0


def test_pair_filter_keeps_exactly_the_pairs_beyond_the_threshold():
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 500, size=40).astype(float)
    pairs = in_batch_pairs(lengths, threshold=0.2)
    kept = {(int(a), int(b)) for a, b in zip(pairs.first, pairs.second)}
    expected = {(i, j) for i, j in itertools.combinations(range(40), 2)
                if lengths[i] != lengths[j] and length_gap_ratio(lengths[i], lengths[j]) >= 0.2}
    assert kept == expected
    assert pairs.considered == 40 * 39 // 2
    assert pairs.filtered == pairs.considered - len(expected)
    for a, b, s in zip(pairs.first, pairs.second, pairs.sign):
        assert s == np.sign(lengths[a] - lengths[b])


def test_threshold_zero_keeps_every_unequal_pair():
    pairs = in_batch_pairs(np.array([10.0, 10.0, 11.0]), threshold=0.0)
    assert sorted(zip(pairs.first.tolist(), pairs.second.tolist())) == [(0, 2), (1, 2)]


def test_pairs_only_within_the_same_model_column():
    # rows 0 and 1 have model A only, row 2 model B only: the only comparable pair is (0, 1)
    lengths = np.array([[10.0, np.nan], [100.0, np.nan], [np.nan, 5.0]])
    pairs = in_batch_pairs(lengths, threshold=0.2)
    assert list(zip(pairs.first.tolist(), pairs.second.tolist(), pairs.sign.tolist())) == [(0, 1, -1.0)]
    assert pairs.considered == 1
