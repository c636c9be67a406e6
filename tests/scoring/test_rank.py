"""Where a score ranks among the checkpoint's held-out scores (pure logic)."""

import pytest

from pars.scoring.rank import AnchoredRank


def test_an_anchored_rank_interpolates_the_checkpoints_quantiles():
    rank = AnchoredRank([0.0, 1.0, 2.0, 4.0, 8.0])  # 0 %, 25 %, 50 %, 75 %, 100 %
    assert [rank.share_below(s) for s in (-5.0, 0.0, 0.5, 2.0, 3.0, 8.0, 99.0)] == [0.0, 0.0, 0.125, 0.5, 0.625, 1.0, 1.0]
    assert AnchoredRank([1.0, 1.0, 1.0]).share_below(1.0) == 0.5  # all tied: the middle


@pytest.mark.parametrize("quantiles", [[2.0, 1.0], [1.0], []])
def test_quantiles_that_cannot_anchor_a_rank_are_refused(quantiles):
    with pytest.raises(ValueError, match="non-decreasing"):
        AnchoredRank(quantiles)
