"""PARS series on vLLM's Prometheus `/metrics`, each from the process where it happens.

The front-end series live in the API-server process, the scheduler series in the engine-core process.
vLLM's `/metrics` (served by the API server) shows other processes' series only in prometheus_client's
multiprocess mode, so `pars serve` points PROMETHEUS_MULTIPROC_DIR at a directory of its own, wiped at
each start (`metrics_dir`, `reset_metrics_dir`). Each series is created once per process: vLLM may build
its app twice, and tests build many engines in one process.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

from prometheus_client import Counter, Histogram

from pars.scoring.metrics import SCORING_SECONDS, ScoringMetrics

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
WAIT_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def metrics_dir(port: int) -> Path:
    """The multiprocess directory of the server on `port` (one per port, so restarts reuse and wipe it)."""
    return Path(tempfile.gettempdir()) / f"pars-metrics-{port}"


def reset_metrics_dir(directory: Path) -> None:
    """Empty `directory` before a server starts: files left by an earlier server would add stale counts."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)


class SchedulerMetrics:
    """The engine scheduler's series: how each request got its size, the engine's own (fallback) scoring
    time, and how long requests waited for admission, split by whether an estimate or the fallback
    ordered them. Labelled `engine` by data-parallel rank, as vLLM labels its own series."""

    def __init__(self) -> None:
        self.requests = Counter("pars_scheduler_requests", "Requests the PARS scheduler ordered, by outcome "
                                "(sized, or the reason it fell back to the neutral size)",
                                ["engine", "policy", "outcome"])
        self.scoring_seconds = Histogram("pars_scheduler_scoring_seconds", "Time from arrival to the engine's own "
                                         "score, for requests that came without a front-end score",
                                         ["engine", "policy"], buckets=SCORING_SECONDS)
        self.queue_wait_seconds = Histogram("pars_scheduler_queue_wait_seconds", "Time from arrival to first "
                                            "admission, by what ordered the request",
                                            ["engine", "policy", "ordered_by"], buckets=WAIT_SECONDS)


@functools.cache
def front_end_metrics() -> ScoringMetrics:
    """The middleware's series: every request it saw, by outcome, and the time scoring took."""
    return ScoringMetrics("pars_frontend_requests", "pars_frontend_scoring_seconds", "Requests seen by the PARS "
                          "front-end scorer")


@functools.cache
def scheduler_metrics() -> SchedulerMetrics:
    return SchedulerMetrics()
