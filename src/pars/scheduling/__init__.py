"""Engine-free ordering of a waiting queue: size sources (predicted, oracle), aging keys, starvation bound.

`pars.integrations.vllm` is thin glue that feeds these classes from a real vLLM scheduler.
"""

from pars.scheduling.keys import AgingRule, NeutralSize
from pars.scheduling.sizes import (
    OracleSizes,
    PredictedSizes,
    RequestView,
    SizeSource,
    Verdict,
)
from pars.scheduling.queue import RankedQueue
from pars.scheduling.settings import SchedulerSettings, SettingsError
from pars.scheduling.stats import SchedulingCounters

__all__ = [
    "AgingRule",
    "NeutralSize",
    "OracleSizes",
    "SizeSource",
    "PredictedSizes",
    "RequestView",
    "Verdict",
    "RankedQueue",
    "SchedulerSettings",
    "SettingsError",
    "SchedulingCounters",
]
