"""In-process vLLM engines for tests and measurements, with the PARS scheduler of a named policy."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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

    `pars_settings` go to additional_config["pars"] (aging_rate, max_wait_s, ...). The engine is built with
    the small-CPU defaults (1 GiB KV cache, in-process engine core) where the caller's environment does not
    set them; the caller's environment is left as it was.
    """
    from vllm import LLM

    chosen = get_policy(policy)
    kwargs: dict[str, Any] = {"enforce_eager": True, "disable_log_stats": False, **engine_kwargs}
    if chosen.scheduler_cls is not None:
        kwargs["scheduler_cls"] = chosen.scheduler_cls
        kwargs["additional_config"] = scheduler_config(chosen, predictor_dir, **(pars_settings or {}))
    with scoped_environ({name: os.environ.get(name, value) for name, value in CPU_DEFAULTS.items()}):
        return LLM(str(model_dir), **kwargs)


@contextmanager
def scoped_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set `values` in os.environ for the block (vLLM reads its settings from there while an engine is
    built), then restore what was there, so building an engine changes nothing process-wide."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def scheduler_of(llm: Any) -> Any:
    """The scheduler object of an in-process engine (VLLM_ENABLE_V1_MULTIPROCESSING=0)."""
    return llm.llm_engine.engine_core.engine_core.scheduler
