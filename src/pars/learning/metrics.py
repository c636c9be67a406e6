"""The learner's Prometheus series (`pars_learn_*` on vLLM's /metrics, from the API-server process).

Gauges keep the most recent value in prometheus_client's multiprocess mode (`pars serve` runs one).
"""

from __future__ import annotations

import functools

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

REFIT_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0, 120.0)


class LearnerMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.logged = Counter("pars_learn_logged", "Finished requests logged, by kind of length (exact, or "
                              "censored: cut by max_tokens, aborted or disconnected)", ["kind"],
                              registry=registry)
        self.log_bytes = Gauge("pars_learn_log_bytes", "Size of the length log on disk, rotated files included",
                               multiprocess_mode="mostrecent", registry=registry)
        self.refits = Counter("pars_learn_refits", "Refits by outcome (done, failed, crashed, timeout)", ["outcome"],
                              registry=registry)
        self.refit_seconds = Histogram("pars_learn_refit_seconds", "Wall time of a finished refit",
                                       buckets=REFIT_SECONDS, registry=registry)
        self.swaps = Counter("pars_learn_swaps", "Refitted scorers by what the guard did (swapped, rejected, "
                             "load_failed)", ["outcome"], registry=registry)
        self.rollbacks = Counter("pars_learn_rollbacks", "Swaps undone because the previous scorer ranked the "
                                 "next window better", registry=registry)
        self.rolling_tau = Gauge("pars_learn_rolling_tau", "Kendall tau of a scorer on the last 200 exact lengths "
                                 "(live: the scorer serving now; initial: the one the server started from)",
                                 ["scorer"], multiprocess_mode="mostrecent", registry=registry)
        self.faults = Counter("pars_learn_faults", "Faults the learner survived, by kind", ["kind"],
                              registry=registry)


@functools.cache
def learner_metrics() -> LearnerMetrics:
    """One set per process (vLLM may build its app twice)."""
    return LearnerMetrics()
