import numpy as np
import pytest

from pars.data import LengthRecord
from pars.data.labels import group_by_prompt


def records():
    return [
        LengthRecord("Tell me a story.", 100, "a", "s1"),
        LengthRecord("tell me a story", 300, "b", "s1"),  # same prompt after normalisation
        LengthRecord("Tell me a story.", 900, "c", "s1"),
        LengthRecord("Say hi.", 10, "a", "s1"),
        LengthRecord("Prove it.", 50, "z", "s2"),
    ]


def test_consensus_is_the_per_source_median_of_log_lengths():
    labels = group_by_prompt(records(), "consensus")
    assert labels.label_names == ["consensus:s1", "consensus:s2"]
    assert labels.prompts == ["Tell me a story.", "Say hi.", "Prove it."]
    np.testing.assert_allclose(labels.lengths[0], [300.0, np.nan])  # median of 100, 300, 900
    np.testing.assert_allclose(labels.lengths[2], [np.nan, 50.0])


def test_per_model_keeps_one_column_per_model():
    labels = group_by_prompt(records(), "per-model")
    assert labels.label_names == ["a", "b", "c", "z"]
    np.testing.assert_allclose(labels.lengths[1], [10.0, np.nan, np.nan, np.nan])


def test_unknown_label_mode_is_rejected():
    with pytest.raises(ValueError, match="unknown label mode"):
        group_by_prompt(records(), "mean")
