import json

import numpy as np
import pytest

from pars.sim import StepProfile

TRUE = StepProfile("truth", "hand-made", base_s=0.004, per_prefill_token_s=3e-5, per_decode_seq_s=6e-5,
                   per_kv_token_s=2e-8)


def synthetic_samples(profile: StepProfile, rows: int = 200) -> np.ndarray:
    rng = np.random.default_rng(1)
    prefill = rng.integers(0, 8192, rows)
    decode = rng.integers(0, 256, rows)
    kv = prefill + rng.integers(0, 400_000, rows)
    seconds = [profile.step_time(p, d, k) for p, d, k in zip(prefill, decode, kv)]
    return np.column_stack([prefill, decode, kv, seconds])


def test_step_time_is_the_linear_model():
    assert TRUE.step_time(100, 10, 5000) == pytest.approx(0.004 + 100 * 3e-5 + 10 * 6e-5 + 5000 * 2e-8)


def test_fit_recovers_known_coefficients_from_exact_samples():
    fitted = StepProfile.fit(synthetic_samples(TRUE), name="h200", source="synthetic")
    for key in ("base_s", "per_prefill_token_s", "per_decode_seq_s", "per_kv_token_s"):
        assert getattr(fitted, key) == pytest.approx(getattr(TRUE, key), rel=1e-6)
    assert fitted.quality.r2 == pytest.approx(1.0, abs=1e-9)
    assert fitted.quality.mean_relative_error < 1e-9
    assert fitted.quality.samples == 200


def test_fit_keeps_coefficients_non_negative_when_the_data_pull_one_below_zero():
    samples = synthetic_samples(StepProfile("no-decode-cost", "", 0.004, 3e-5, 0.0, 2e-8))
    samples[:, 3] -= 1e-6 * samples[:, 1]  # steps with more sequences are slightly faster: noise
    fitted = StepProfile.fit(samples)
    assert fitted.per_decode_seq_s == 0.0
    assert 0.0 < fitted.quality.mean_relative_error < 0.1


def test_fit_rejects_too_few_or_non_positive_samples():
    with pytest.raises(ValueError, match="at least 4 rows"):
        StepProfile.fit([[1, 1, 1, 0.01]])
    with pytest.raises(ValueError, match="seconds > 0"):
        StepProfile.fit([[1, 1, 1, 0.0]] * 4)


def test_save_then_load_returns_the_same_profile_with_its_fit(tmp_path):
    fitted = StepProfile.fit(synthetic_samples(TRUE), name="h200", source="vllm 0.32.0, llama-8b")
    path = tmp_path / "h200.json"
    fitted.save(path)
    assert json.loads(path.read_text())["fit"]["samples"] == 200
    assert StepProfile.load(path) == fitted


@pytest.mark.parametrize(("content", "problem"), [
    ("{not json", "not readable JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"name": "x", "source": "", "base_s": 0.01, "per_prefill_token_s": 0, "per_decode_seq_s": 0}',
     "missing per_kv_token_s"),
    ('{"name": "x", "source": "", "base_s": -0.01, "per_prefill_token_s": 0, "per_decode_seq_s": 0, '
     '"per_kv_token_s": 0}', "base_s must be a finite number >= 0"),
    ('{"name": "x", "source": "", "base_s": "fast", "per_prefill_token_s": 0, "per_decode_seq_s": 0, '
     '"per_kv_token_s": 0}', "base_s must be a finite number"),
    ('{"name": "x", "source": "", "base_s": 0.01, "per_prefill_token_s": 0, "per_decode_seq_s": 0, '
     '"per_kv_token_s": 0, "per_token": 1}', "unknown keys per_token"),
    ('{"name": "x", "source": "", "base_s": 0.01, "per_prefill_token_s": 0, "per_decode_seq_s": 0, '
     '"per_kv_token_s": 0, "fit": {"r2": 1}}', "mean_relative_error"),
])
def test_malformed_profile_file_raises_value_error_naming_the_file_and_the_problem(tmp_path, content, problem):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=problem) as error:
        StepProfile.load(path)
    assert str(path) in str(error.value)


def test_missing_profile_file_raises_value_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match="no such file") as error:
        StepProfile.load(tmp_path / "absent.json")
    assert "absent.json" in str(error.value)
