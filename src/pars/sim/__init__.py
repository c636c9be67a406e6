"""A discrete-event simulator of one vLLM V1 replica's continuous batching, ordered by the real PARS queue.

Modelled: vLLM's per-step scheduling (running requests first, then admissions in `RankedQueue` order
under the `AgingRule`), the token budget, max_num_seqs, chunked prefill, KV blocks with recompute
preemption of the most recently admitted request, step time from a fitted `StepProfile`, and the
cost of scoring (in front of the engine or inside its step). Not modelled: prefix caching, speculative
decoding, async scheduling, CUDA-graph batch padding, max_model_len, the scheduler's own CPU time
(unless the profile's base time holds it), sampling stops other than the output length, networking.
Pure Python and numpy; vLLM is never imported. Step-time profiles ship in `profiles/` (`shipped_profiles()`,
`StepProfile.named(name)`); `pars bench calibrate` measures a new one, `pars bench sim --validate` checks one.
"""

from pars.sim.engine import EngineConfig, simulate
from pars.sim.profile import ProfileFit, StepProfile, shipped_profiles
from pars.sim.requests import FCFS_SIZE, SimRequest, oracle_size
from pars.sim.result import EngineCounters, SimResult, StepRecord

__all__ = [
    "EngineConfig",
    "EngineCounters",
    "FCFS_SIZE",
    "ProfileFit",
    "SimRequest",
    "SimResult",
    "StepProfile",
    "StepRecord",
    "oracle_size",
    "shipped_profiles",
    "simulate",
]
