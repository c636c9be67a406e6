"""In-process vLLM engines for tests and measurements, with the PARS scheduler of a named policy."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pars.integrations.vllm.policies import get_policy, scheduler_config

CPU_DEFAULTS = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


def build_llm(
    model_dir: str | Path,
    policy: str,
    predictor_dir: str | Path | None = None,
    pars_settings: dict[str, object] | None = None,
    **engine_kwargs: Any,
):  # noqa: ANN201 - vllm.LLM, imported lazily
    """A `vllm.LLM` whose scheduler follows `policy` (a name in POLICIES).

    `pars_settings` go to additional_config["pars"] (aging_rate, max_wait_s, ...). Sets the small-CPU
    environment defaults (1 GiB KV cache, in-process engine core) unless already set.
    """
    for name, value in CPU_DEFAULTS.items():
        os.environ.setdefault(name, value)
    from vllm import LLM

    chosen = get_policy(policy)
    kwargs: dict[str, Any] = {"enforce_eager": True, "disable_log_stats": False, **engine_kwargs}
    if chosen.scheduler_cls is not None:
        kwargs["scheduler_cls"] = chosen.scheduler_cls
        kwargs["additional_config"] = scheduler_config(chosen, predictor_dir, **(pars_settings or {}))
    return LLM(str(model_dir), **kwargs)


def scheduler_of(llm: Any) -> Any:
    """The scheduler object of an in-process engine (VLLM_ENABLE_V1_MULTIPROCESSING=0)."""
    return llm.llm_engine.engine_core.engine_core.scheduler
