"""The scorer's Prometheus series, one shape for every service that scores (vLLM's front end and
the score server): requests by outcome (scored, or the fallback reason) and the time scoring took.

Each service keeps its own metric names (`pars_frontend_*`, `pars_score_server_*`), so a
dashboard tells them apart; what is counted and how is decided here once.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from pars.scoring.batcher import ScoreResult

SCORING_SECONDS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class ScoringMetrics:
    """`<outcomes>_total{outcome}` and the `<seconds>` histogram, fed one `ScoreResult` at a time."""

    def __init__(self, outcomes: str, seconds: str, what: str, registry: CollectorRegistry = REGISTRY) -> None:
        self.outcomes = Counter(outcomes, f"{what} by outcome (scored, or the reason it fell back)", ["outcome"],
                                registry=registry)
        self.seconds = Histogram(seconds, f"Time {what.lower()} spent being scored", buckets=SCORING_SECONDS,
                                 registry=registry)

    def observe(self, result: ScoreResult) -> None:
        self.outcomes.labels(outcome=result.outcome).inc()
        if result.seconds is not None:
            self.seconds.observe(result.seconds)
