"""PARS inside vLLM: scheduler classes, serving policies, engine helpers, the tiny test model.

The only package that imports vllm; it does so lazily, so `import pars.integrations.vllm` is cheap.
Public: POLICIES, get_policy, build_llm, scheduler_of, serve_argv, make_tiny_model,
PARSScheduler / OracleScheduler (from .scheduler, which imports vllm).
"""

from pars.integrations.vllm.engine import build_llm, scheduler_of
from pars.integrations.vllm.policies import POLICIES, ServingPolicy, get_policy
from pars.integrations.vllm.serve import serve_argv
from pars.integrations.vllm.tiny_model import make_tiny_model

__all__ = ["POLICIES", "ServingPolicy", "get_policy", "build_llm", "scheduler_of", "serve_argv", "make_tiny_model"]


def __getattr__(name: str):  # noqa: ANN202 - lazy access to the vllm-importing classes
    if name in ("PARSScheduler", "OracleScheduler", "RankedScheduler"):
        from pars.integrations.vllm import scheduler

        return getattr(scheduler, name)
    raise AttributeError(name)
