"""Scheduler settings from vLLM's `additional_config["pars"]` and `PARS_*` environment variables.

Precedence: additional_config, then environment, then defaults. Keys / variables:
  predictor          PARS_PREDICTOR          checkpoint dir (default: pars.paths.default_predictor_dir())
  aging_rate         PARS_AGING_RATE         key units per second of waiting (default 0.05)
  max_wait_s         PARS_MAX_WAIT_S         hard maximum wait before a request goes first (default 60; inf: off)
  fcfs_wait_factor   PARS_FCFS_WAIT_FACTOR   a request goes first once it waited this many times the
                                             current FCFS wait, waiting/admission rate (default 2; inf: off)
  budget_ms          PARS_SCORE_BUDGET_MS    most an engine step waits for scores (default 20)
  timeout_s          PARS_SCORE_TIMEOUT_S    a score later than this falls back (default 5)
  max_batch          PARS_SCORE_BATCH        most prompts per predictor call (default 8: a burst's
                                             first requests reach the engine after one small batch)
  max_queued         PARS_SCORE_QUEUE        most prompts waiting for the scorer; more fall back as
                                             "scorer_overloaded" (default 256)
  max_prompt_tokens  PARS_MAX_PROMPT_TOKENS  longer prompts are not scored (default 32768)
  frontend_timeout_s PARS_FRONTEND_TIMEOUT_S most front-end scoring may delay a request (default 1)

Every value is typed and range-checked at engine start: a bad one raises `SettingsError` naming the key,
its variable, the value and the allowed range. Booleans are not numbers and integers are not rounded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from pars.scheduling.keys import AgingRule


class SettingsError(ValueError):
    """A PARS scheduler setting has an unusable value."""


@dataclass(frozen=True)
class Rule:
    """How one setting is read: its variable, its type, and the smallest value allowed."""

    env: str
    kind: type
    minimum: float | None = None
    exclusive: bool = False  # the minimum itself is not allowed
    allow_inf: bool = False  # inf means "off"

    def describe(self) -> str:
        if self.kind is str:
            return "a non-empty string"
        what = "an integer" if self.kind is int else "a finite number"
        bound = f" {'>' if self.exclusive else '>='} {self.minimum:g}" if self.minimum is not None else ""
        return what + bound + (" or inf" if self.allow_inf else "")

    def parse(self, raw: Any) -> Any:  # noqa: ANN401 - str | int | float by `kind`
        """The value, or ValueError when it has the wrong type or lies outside the range."""
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise ValueError
        if self.kind is str:
            if not isinstance(raw, str) or not raw.strip():
                raise ValueError
            return raw
        if self.kind is int:
            if isinstance(raw, float) or (isinstance(raw, str) and not raw.strip().lstrip("+-").isdigit()):
                raise ValueError
            value: float = int(raw)
        else:
            value = float(raw)
            if math.isnan(value) or (math.isinf(value) and not (self.allow_inf and value > 0)):
                raise ValueError
        if self.minimum is not None and (value <= self.minimum if self.exclusive else value < self.minimum):
            raise ValueError
        return value


RULES: dict[str, Rule] = {
    "predictor": Rule("PARS_PREDICTOR", str),
    "aging_rate": Rule("PARS_AGING_RATE", float, 0),
    "max_wait_s": Rule("PARS_MAX_WAIT_S", float, 0, exclusive=True, allow_inf=True),
    "fcfs_wait_factor": Rule("PARS_FCFS_WAIT_FACTOR", float, 1, allow_inf=True),
    "budget_ms": Rule("PARS_SCORE_BUDGET_MS", float, 0),
    "timeout_s": Rule("PARS_SCORE_TIMEOUT_S", float, 0, exclusive=True),
    "max_batch": Rule("PARS_SCORE_BATCH", int, 1),
    "max_queued": Rule("PARS_SCORE_QUEUE", int, 1),
    "max_prompt_tokens": Rule("PARS_MAX_PROMPT_TOKENS", int, 1),
    "frontend_timeout_s": Rule("PARS_FRONTEND_TIMEOUT_S", float, 0, exclusive=True),
}


@dataclass(frozen=True)
class SchedulerSettings:
    predictor: str | None = None
    aging_rate: float = 0.05
    max_wait_s: float = 60.0
    fcfs_wait_factor: float = 2.0
    budget_ms: float = 20.0
    timeout_s: float = 5.0
    max_batch: int = 8
    max_queued: int = 256
    max_prompt_tokens: int = 32768
    frontend_timeout_s: float = 1.0

    @property
    def aging(self) -> AgingRule:
        return AgingRule(rate=self.aging_rate, max_wait_s=self.max_wait_s, fcfs_wait_factor=self.fcfs_wait_factor)

    @classmethod
    def from_sources(cls, additional_config: Mapping[str, Any] | None, env: Mapping[str, str]) -> SchedulerSettings:
        """Merge the sources; unknown keys and bad values raise `SettingsError` at engine start."""
        given = (additional_config or {}).get("pars", {})
        if not isinstance(given, Mapping):
            raise SettingsError(f"additional_config['pars'] must be a JSON object, got {given!r}")
        unknown = set(given) - set(RULES)
        if unknown:
            raise SettingsError(f"unknown additional_config['pars'] keys {sorted(unknown)}; known: {sorted(RULES)}")
        values: dict[str, Any] = {}
        for f in fields(cls):
            rule = RULES[f.name]
            raw = given.get(f.name, env.get(rule.env))
            if raw is None:
                continue
            try:
                values[f.name] = rule.parse(raw)
            except (TypeError, ValueError, OverflowError):
                raise SettingsError(f"PARS setting {f.name} ({rule.env}) = {raw!r}: "
                                    f"must be {rule.describe()}") from None
        return cls(**values)
