"""Where vLLM's scheduler internals differ between the releases PARS supports; the one place that knows.

The scheduler class (`pars.integrations.vllm.scheduler`) reads vLLM's scheduler state through these
functions only, so it reads the same on every supported release. What moved (checked from each wheel's
source by `scripts/check_vllm_internals.py`, results in results/vllm/):

- The queues admission draws from. `waiting` on every release, plus one for requests that wait on
  something else: `skipped_waiting` (0.30: blocked on a grammar, remote KV or streaming input),
  renamed `kv_holding_waiting` in 0.31 (requests that still hold KV blocks); 0.34 adds `async_kv_waiting`
  (with a KV connector and `--max-num-inflight-kv-loads` only). PARS ranks every one that exists.
- The admission limit: `max_num_running_reqs` (0.30) became `max_num_active_reqs` in 0.31, beside a
  `max_num_running_reqs` that then means slots (`--max-num-active-seqs` can set fewer).
- Paused streaming sessions, `num_waiting_for_streaming_input`, count against that limit on every
  supported release; read with a default so a release without them counts none.
- The data-parallel rank of an engine core: `ParallelConfig.data_parallel_index` where it exists (vLLM
  resets `data_parallel_rank` to 0 in every core of a dense model's DP and keeps the rank there), else
  `data_parallel_rank`. It is the `engine` label of vLLM's own series, and of PARS's scheduler series.
"""

from __future__ import annotations

from typing import Any

ADMISSION_QUEUES = ("waiting", "kv_holding_waiting", "skipped_waiting", "async_kv_waiting")


def admission_queues(scheduler: Any) -> tuple[str, ...]:
    """Names of the request queues this release's scheduler built (after vLLM's `__init__`), `waiting` first."""
    return tuple(name for name in ADMISSION_QUEUES if hasattr(scheduler, name))


def admission_limit(scheduler: Any) -> int:
    """How many requests vLLM lets run at once: what a waiting request competes for."""
    limit = getattr(scheduler, "max_num_active_reqs", None)
    return scheduler.max_num_running_reqs if limit is None else limit


def engine_index(vllm_config: Any) -> int:
    """This engine core's data-parallel rank (0 without data parallelism)."""
    parallel = vllm_config.parallel_config
    return getattr(parallel, "data_parallel_index", parallel.data_parallel_rank)


def paused_sessions(scheduler: Any) -> int:
    """Streaming-input sessions that hold a running slot while they wait for more input."""
    return getattr(scheduler, "num_waiting_for_streaming_input", 0)
