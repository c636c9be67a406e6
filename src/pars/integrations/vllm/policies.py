"""Serving policies by name: which scheduler class and which predictor checkpoint each one uses.

Imports no vLLM, so the CLI and benchmarks can list policies cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pars.paths import PROJECT_ROOT, default_predictor_dir

SCHEDULER_MODULE = "pars.integrations.vllm.scheduler"


@dataclass(frozen=True)
class ServingPolicy:
    """`scheduler_cls` None means stock vLLM (FCFS); `uses_predictor` policies need a checkpoint dir."""

    name: str
    scheduler_cls: str | None
    uses_predictor: bool = False

    def default_predictor_dir(self) -> Path:
        """pars: pars.paths.default_predictor_dir(); a baseline <name>: artifacts/predictor-<name>."""
        if self.name == "pars":
            return default_predictor_dir()
        return PROJECT_ROOT / "artifacts" / f"predictor-{self.name}"


def _predicted(name: str) -> ServingPolicy:
    return ServingPolicy(name, f"{SCHEDULER_MODULE}.PARSScheduler", uses_predictor=True)


POLICIES: dict[str, ServingPolicy] = {
    policy.name: policy
    for policy in (
        ServingPolicy("fcfs", None),
        ServingPolicy("oracle", f"{SCHEDULER_MODULE}.OracleScheduler"),
        _predicted("pars"),
        _predicted("pointwise"),
        _predicted("listmle"),
        _predicted("classify"),
    )
}


def get_policy(name: str) -> ServingPolicy:
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; choose one of {sorted(POLICIES)}") from None


def scheduler_config(policy: ServingPolicy, predictor_dir: str | Path | None, **settings: object) -> dict:
    """The `additional_config` for a policy: {"pars": {...}} with the predictor dir where one is used."""
    pars: dict[str, object] = dict(settings)
    if policy.uses_predictor:
        pars["predictor"] = str(predictor_dir or policy.default_predictor_dir())
    return {"pars": pars} if pars else {}
