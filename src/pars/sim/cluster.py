"""N simulated replicas behind a router: a balancer (pars.sim.balancing) picks a replica for each request
from what it has in flight there, as vllm-router does.

The router scores each request first (one FIFO scorer, `router_scoring_ms` a request); the replicas then
only order by the size it gave. The replicas advance in lock step to each dispatch time, so the balancer
sees exactly the requests that have not finished by then.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np

from pars.scheduling import AgingRule
from pars.sim.balancing import NEUTRAL_WORK, Balancer
from pars.sim.balancing import Replica as RoutedReplica
from pars.sim.engine import EngineConfig, Replica, scored_entries
from pars.sim.profile import StepProfile
from pars.sim.requests import SimRequest
from pars.sim.result import EngineCounters, SimResult


@dataclass(frozen=True)
class ClusterResult:
    result: SimResult  # every request, in input order
    replica: np.ndarray  # the replica each request went to, in input order

    @property
    def per_replica(self) -> tuple[int, ...]:
        return tuple(np.bincount(self.replica).tolist())


def neutral_work(_: SimRequest) -> float:
    """The work the router assumes for a request it has no estimate for."""
    return NEUTRAL_WORK


def simulate_cluster(requests: Iterable[SimRequest], profile: StepProfile, config: EngineConfig, replicas: int,
                     balancer: str = "least-work", aging: AgingRule = AgingRule(),
                     work_of: Callable[[SimRequest], float] = neutral_work,
                     router_scoring_ms: float = 0.0) -> ClusterResult:
    """Serve `requests` (sorted by arrival) on `replicas` identical replicas; `work_of` is the router's
    predicted work of a request (least-work adds it up per replica)."""
    if replicas < 1:
        raise ValueError(f"a cluster needs at least one replica, got {replicas}")
    engine_config = replace(config, scoring_ms=0.0)  # the router scores, the replicas only order
    engines = [Replica(profile, engine_config, aging, None, True) for _ in range(replicas)]
    routed = [RoutedReplica(f"replica-{i}") for i in range(replicas)]
    chooser = Balancer(routed, balancer)
    in_flight: list[dict[int, float]] = [{} for _ in range(replicas)]
    chosen: list[int] = []
    for engine in engines:
        engine.finished = deque()
    for entry_s, request in scored_entries(requests, router_scoring_ms / 1000.0):
        engines[0].check_fits(request)
        for engine, view, flying in zip(engines, routed, in_flight):
            engine.advance(entry_s)
            _drop_finished(engine, view, flying, entry_s)
        target = chooser.choose()
        k = routed.index(target)
        chosen.append(k)
        work = work_of(request)
        rid = engines[k].enter(entry_s, request)
        in_flight[k][rid] = work
        target.dispatch(work)
    for engine in engines:
        engine.advance(math.inf)
    replica_of = np.asarray(chosen, dtype=np.int64)
    return ClusterResult(_merged([engine.result() for engine in engines], replica_of), replica_of)


def _drop_finished(engine: Replica, view: RoutedReplica, flying: dict[int, float], now: float) -> None:
    """Release the router's share of the requests that finished by `now` (later finishes stay in flight)."""
    finished = engine.finished
    while finished and engine.finish[finished[0]] <= now:
        view.release(flying.pop(finished.popleft()))


def _merged(results: list[SimResult], replica_of: np.ndarray) -> SimResult:
    """One result in input order: replica k's rows (in its entry order) go where its requests came in."""
    positions = [np.flatnonzero(replica_of == k) for k in range(len(results))]

    def column(name: str) -> np.ndarray:
        merged = np.empty(len(replica_of), dtype=getattr(results[0], name).dtype)
        for rows, result in zip(positions, results):
            merged[rows] = getattr(result, name)
        return merged

    counters = EngineCounters(*(f([getattr(r.counters, field) for r in results]) for field, f in
                                (("steps", sum), ("preemptions", sum), ("max_running", max),
                                 ("max_step_tokens", max), ("leaps", sum))))
    return SimResult(column("index"), column("arrival_s"), column("first_token_s"), column("finish_s"),
                     column("output_tokens"), column("queueing_s"), counters)
