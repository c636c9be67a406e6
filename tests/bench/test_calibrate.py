"""A tiny real calibration: the recording scheduler's steps on the real vLLM engine add up, and they fit."""

from __future__ import annotations

import numpy as np
import pytest

from pars.bench.calibrate import CalibrationPlan, CalibrationRequest
from pars.sim import StepProfile

LONE = CalibrationRequest(prompt_tokens=100, output_tokens=6)
TOGETHER = [CalibrationRequest(300, 5), CalibrationRequest(40, 7), CalibrationRequest(700, 4)]
MORE = [[CalibrationRequest(1500, 3)], [CalibrationRequest(20, 12), CalibrationRequest(900, 9)]]


@pytest.fixture(scope="module")
def steps(tmp_path_factory) -> np.ndarray:
    from pars.integrations.vllm import make_tiny_model
    from pars.integrations.vllm.calibration import record_steps

    model = make_tiny_model(tmp_path_factory.mktemp("tiny-model"))
    return record_steps(model, [[LONE], TOGETHER, *MORE], max_num_seqs=4, max_model_len=4096)


def test_a_lone_request_is_one_prefill_step_of_its_prompt_then_one_decode_step_per_further_token(steps):
    prefill, decode, kv, seconds = steps[: LONE.output_tokens].T
    assert (prefill[0], decode[0], kv[0]) == (LONE.prompt_tokens, 0, LONE.prompt_tokens)
    assert (prefill[1:] == 0).all() and (decode[1:] == 1).all()
    assert kv[1:].tolist() == [LONE.prompt_tokens + k for k in range(1, LONE.output_tokens)]
    assert (seconds > 0).all()


def test_a_batch_prefills_exactly_its_prompts_and_decodes_each_further_token_once(steps):
    first = LONE.output_tokens
    # the batch's steps: up to the first step of the next batch (a lone 1500-token prompt)
    end = first + next(i for i, row in enumerate(steps[first:]) if row[0] == MORE[0][0].prompt_tokens)
    batch = steps[first:end]
    assert batch[:, 0].sum() == sum(r.prompt_tokens for r in TOGETHER)
    assert batch[:, 1].sum() == sum(r.output_tokens - 1 for r in TOGETHER)


def test_the_fitted_profile_predicts_the_recorded_steps(steps):
    profile = StepProfile.fit(steps, name="test")
    # the fit may put a step's fixed cost in base_s or in per_decode_seq_s (one sequence decodes in most steps)
    assert profile.quality.r2 > 0.5 and profile.per_prefill_token_s > 0
    assert profile.base_s + profile.per_decode_seq_s > 0
    assert profile.quality.samples == len(steps)


def test_the_plan_cycles_batch_sizes_and_keeps_lengths_in_range():
    plan = CalibrationPlan(rounds=16, max_num_seqs=4, min_prompt=16, max_prompt=2000, min_output=8, max_output=160)
    batches = plan.batches()
    assert [len(b) for b in batches] == [1, 2, 3, 4, 5, 6, 7, 8] * 2
    requests = [r for b in batches for r in b]
    assert all(16 <= r.prompt_tokens <= 2000 and 8 <= r.output_tokens <= 160 for r in requests)
    assert plan.batches() == batches  # seeded
