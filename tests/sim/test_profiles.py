"""Every profile shipped with the package loads by name and predicts plausible step times."""

from __future__ import annotations

import pytest

from pars.sim import StepProfile, shipped_profiles
from pars.sim.profile import PROFILES_DIR


def test_the_cpu_and_the_gpu_profiles_ship():
    assert {"cpu-tiny-llama", "h100-llama-3.1-8b"} <= set(shipped_profiles())


@pytest.mark.parametrize("name", shipped_profiles())
def test_each_shipped_profile_loads_by_name_and_is_sane(name):
    profile = StepProfile.named(name)
    assert profile.name == name
    assert len(profile.source) > 40  # says where the numbers come from
    decode = profile.step_time(0, 1, 500)
    assert 1e-4 < decode < 0.1  # a decode step between 0.1 ms and 100 ms
    assert profile.base_s > 0
    assert profile.step_time(2000, 0, 2000) > decode  # a long prefill costs more than one decode
    assert profile.step_time(0, 4, 2000) >= decode


def test_the_gpu_profile_says_it_is_derived_from_published_figures_and_cites_them():
    profile = StepProfile.named("h100-llama-3.1-8b")
    assert "not measured here" in profile.source.lower()
    assert "https://" in profile.source
    assert profile.quality is None


def test_the_measured_cpu_profile_carries_its_fit_quality():
    profile = StepProfile.named("cpu-tiny-llama")
    assert profile.quality is not None and profile.quality.r2 > 0.5 and profile.quality.samples > 100


def test_named_accepts_a_path_and_rejects_an_unknown_name_listing_the_shipped_ones(tmp_path):
    path = tmp_path / "mine.json"
    StepProfile.named("cpu-tiny-llama").save(path)
    assert StepProfile.named(path) == StepProfile.named("cpu-tiny-llama")
    assert StepProfile.named(str(PROFILES_DIR / "cpu-tiny-llama.json")).name == "cpu-tiny-llama"
    with pytest.raises(ValueError, match="no step profile named 'a100-nothing'.*cpu-tiny-llama"):
        StepProfile.named("a100-nothing")
