"""Simulator workloads: the serving benchmark's held-out prompts and arrivals as `SimRequest`s, with the
queue size each policy gives a request, computed as the real schedulers compute it.

Policies: fcfs (one size for all), oracle (log2(1 + true length), as OracleScheduler), pars (the checkpoint's
scores), and the rankers of `pars bench rank`'s main comparison (margin, listmle, pointwise, classify trained
with `pars train`'s recipe, seed 0; their saved scores of the same test prompts). `blended_sizes` makes a
ranker of chosen quality from the true lengths and noise. A prompt's token count is estimated from its
characters (4 a token), as the simulator needs only a rough prefill cost.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from pars.bench.workload import PoolPrompt, Workload, scale_length
from pars.paths import PROJECT_ROOT
from pars.sim import FCFS_SIZE, SimRequest, oracle_size

CHARS_PER_TOKEN = 4.0
RANK_BENCH_METHODS = ("margin", "listmle", "pointwise", "classify")
POLICIES = ("fcfs", "pars", "oracle", *RANK_BENCH_METHODS)
RANK_RESULTS = PROJECT_ROOT / "results" / "ranking"


def prompt_tokens(prompt: str) -> int:
    return max(1, math.ceil(len(prompt) / CHARS_PER_TOKEN))


def pool_sizes(policy: str, pool: Sequence[PoolPrompt], predictor_dir: Path | None,
               length_scale: float = 1.0) -> np.ndarray:
    """The queue size of each pool prompt under `policy` (lowest runs first)."""
    if policy == "fcfs":
        return np.full(len(pool), FCFS_SIZE)
    if policy == "oracle":
        return np.array([oracle_size(scale_length(p.true_tokens, length_scale)) for p in pool])
    if policy == "pars":
        from pars.predictor import load_ranker

        if predictor_dir is None:
            raise ValueError("policy pars needs a predictor checkpoint")
        return np.asarray(load_ranker(predictor_dir).score([p.prompt for p in pool]), dtype=float)
    if policy in RANK_BENCH_METHODS:
        return _saved_rank_scores(policy, pool)
    raise ValueError(f"unknown policy {policy!r}; choose from {', '.join(POLICIES)}")


@functools.cache
def _ranking_bench_data():
    """The ranking benchmark's split data (5 s to load), read once for every ranked policy of a run."""
    from pars.bench.ranking import load_bench_data

    return load_bench_data()


def _saved_rank_scores(method: str, pool: Sequence[PoolPrompt]) -> np.ndarray:
    """The main comparison's seed-0 run of `method`, exactly that run (not an ablation of the same loss)."""
    from pars.bench.ranking import PARS_RECIPE, load_outcome

    data = _ranking_bench_data()
    outcome = load_outcome(RANK_RESULTS, replace(PARS_RECIPE, loss=method), data)
    if outcome is None:
        raise ValueError(f"no saved scores of {method} in {RANK_RESULTS / 'runs'}; run `pars bench rank` first")
    scores = dict(zip(data.test_prompts, outcome.scores))
    missing = [p.prompt[:40] for p in pool if p.prompt not in scores]
    if missing:
        raise ValueError(f"{len(missing)} workload prompts have no saved {method} score (e.g. {missing[0]!r}): "
                         "the workload must use the ranking benchmark's test split")
    return np.array([scores[p.prompt] for p in pool])


def blended_sizes(true_tokens: np.ndarray, weight: float, seed: int) -> tuple[np.ndarray, float]:
    """A ranker of chosen quality: weight * z(log length) + sqrt(1 - weight^2) * noise; with its Kendall tau."""
    log_length = np.log1p(np.asarray(true_tokens, dtype=float))
    z = (log_length - log_length.mean()) / (log_length.std() or 1.0)
    noise = np.random.default_rng(seed).standard_normal(len(z))
    sizes = weight * z + math.sqrt(max(0.0, 1 - weight**2)) * noise
    return sizes, float(kendalltau(sizes, true_tokens).statistic)


def sim_requests(workload: Workload, pool: Sequence[PoolPrompt], sizes: np.ndarray) -> list[SimRequest]:
    """The workload's requests with each prompt's size (by its place in the pool)."""
    place = {p.prompt: i for i, p in enumerate(pool)}
    return [SimRequest(r.index, r.arrival_s, prompt_tokens(r.prompt), r.output_tokens, float(sizes[place[r.prompt]]))
            for r in workload.requests]


def synthetic_requests(n: int, rate: float, pool: Sequence[PoolPrompt], sizes: np.ndarray, length_scale: float,
                       seed: int, chunk: int = 1 << 16) -> Iterator[SimRequest]:
    """`n` Poisson arrivals at `rate` with pool prompts drawn at random, generated chunk by chunk so memory stays
    flat however large `n` is."""
    rng = np.random.default_rng(seed)
    tokens_in = np.array([prompt_tokens(p.prompt) for p in pool])
    tokens_out = np.array([scale_length(p.true_tokens, length_scale) for p in pool])
    clock = 0.0
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        arrivals = clock + np.cumsum(rng.exponential(1.0 / rate, size))
        clock = float(arrivals[-1])
        picks = rng.integers(0, len(pool), size)
        for i in range(size):
            k = picks[i]
            yield SimRequest(start + i, float(arrivals[i]), int(tokens_in[k]), int(tokens_out[k]), float(sizes[k]))
