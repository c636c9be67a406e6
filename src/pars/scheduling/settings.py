"""Scheduler settings from vLLM's `additional_config["pars"]` and `PARS_*` environment variables.

Precedence: additional_config, then environment, then defaults. Keys / variables:
  predictor          PARS_PREDICTOR          checkpoint dir (default: pars.paths.default_predictor_dir())
  aging_rate         PARS_AGING_RATE         key units per second of waiting (default 0.05)
  max_wait_s         PARS_MAX_WAIT_S         hard maximum wait before a request goes first (default 60)
  fcfs_wait_factor   PARS_FCFS_WAIT_FACTOR   a request goes first once it waited this many times the
                                             current FCFS wait, waiting/admission rate (default 2; inf: off)
  budget_ms          PARS_SCORE_BUDGET_MS    most an engine step waits for scores (default 20)
  timeout_s          PARS_SCORE_TIMEOUT_S    a score later than this falls back (default 5)
  max_batch          PARS_SCORE_BATCH        most prompts per predictor call (default 8: a burst's
                                             first requests reach the engine after one small batch)
  max_prompt_tokens  PARS_MAX_PROMPT_TOKENS  longer prompts are not scored (default 32768)
  frontend_timeout_s PARS_FRONTEND_TIMEOUT_S most front-end scoring may delay a request (default 1)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from pars.scheduling.keys import AgingRule

ENV_NAMES = {
    "predictor": "PARS_PREDICTOR",
    "aging_rate": "PARS_AGING_RATE",
    "max_wait_s": "PARS_MAX_WAIT_S",
    "fcfs_wait_factor": "PARS_FCFS_WAIT_FACTOR",
    "budget_ms": "PARS_SCORE_BUDGET_MS",
    "timeout_s": "PARS_SCORE_TIMEOUT_S",
    "max_batch": "PARS_SCORE_BATCH",
    "max_prompt_tokens": "PARS_MAX_PROMPT_TOKENS",
    "frontend_timeout_s": "PARS_FRONTEND_TIMEOUT_S",
}


class SettingsError(ValueError):
    """A PARS scheduler setting has an unusable value."""


@dataclass(frozen=True)
class SchedulerSettings:
    predictor: str | None = None
    aging_rate: float = 0.05
    max_wait_s: float = 60.0
    fcfs_wait_factor: float = 2.0
    budget_ms: float = 20.0
    timeout_s: float = 5.0
    max_batch: int = 8
    max_prompt_tokens: int = 32768
    frontend_timeout_s: float = 1.0

    @property
    def aging(self) -> AgingRule:
        return AgingRule(rate=self.aging_rate, max_wait_s=self.max_wait_s, fcfs_wait_factor=self.fcfs_wait_factor)

    @classmethod
    def from_sources(cls, additional_config: Mapping[str, Any] | None, env: Mapping[str, str]) -> SchedulerSettings:
        """Merge the sources; unknown keys and bad values raise `SettingsError` at engine start."""
        given = dict((additional_config or {}).get("pars", {}))
        unknown = set(given) - set(ENV_NAMES)
        if unknown:
            raise SettingsError(f"unknown additional_config['pars'] keys {sorted(unknown)}; known: {sorted(ENV_NAMES)}")
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = given.get(f.name, env.get(ENV_NAMES[f.name]))
            if raw is None:
                continue
            convert: Callable[[Any], Any] = {"int": int, "float": float}.get(str(f.type), str)
            try:
                values[f.name] = convert(raw)
            except (TypeError, ValueError) as err:
                raise SettingsError(f"PARS setting {f.name} ({ENV_NAMES[f.name]}) = {raw!r}: {err}") from err
        settings = cls(**values)
        if settings.budget_ms < 0 or settings.timeout_s <= 0 or settings.max_batch < 1 or settings.max_prompt_tokens < 1 \
                or not settings.frontend_timeout_s > 0:
            raise SettingsError(f"PARS settings out of range: {settings}")
        try:
            settings.aging
        except ValueError as err:
            raise SettingsError(str(err)) from err
        return settings
