"""The PARS, oracle and FCFS schedulers inside a real in-process vLLM engine on the tiny model."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
from scipy.stats import spearmanr
from vllm import SamplingParams

from pars.integrations.vllm import scheduler_of

N_REQUESTS = 60


def workload(seed: int = 0) -> tuple[list[str], list[int]]:
    rng = random.Random(seed)
    words = ["explain", "write", "list", "why", "poem", "code", "history", "short", "essay", "plan"]
    prompts = [f"{i}: " + " ".join(rng.choice(words) for _ in range(rng.randint(3, 30))) for i in range(N_REQUESTS)]
    lengths = [rng.randint(2, 40) for _ in range(N_REQUESTS)]
    return prompts, lengths


def params(length: int) -> SamplingParams:
    return SamplingParams(max_tokens=length, ignore_eos=True, extra_args={"pars_true_length": length})


def run(llm, prompts: list[str], lengths: list[int]):
    outputs = llm.generate(prompts, [params(n) for n in lengths], use_tqdm=False)
    assert [o.prompt for o in outputs] == prompts, "requests lost, duplicated or reordered in the output"
    assert [len(o.outputs[0].token_ids) for o in outputs] == lengths
    return outputs


def finish_rank(outputs) -> np.ndarray:
    return np.argsort(np.argsort([o.metrics.last_token_ts for o in outputs], kind="stable"), kind="stable")


@pytest.mark.parametrize("policy", ["fcfs", "oracle", "pars"])
def test_every_request_completes_with_exactly_its_length(engine, policy):
    prompts, lengths = workload()
    run(engine(policy), prompts, lengths)


def test_oracle_finish_order_follows_length(engine):
    prompts, lengths = workload()
    llm = engine("oracle")
    outputs = run(llm, prompts, lengths)
    rho = spearmanr(finish_rank(outputs), lengths).statistic
    assert rho > 0.8, rho
    assert scheduler_of(llm).counters.sized == N_REQUESTS


def test_pars_scores_every_request_once_and_admits_by_score(engine, predictor_dir):
    from pars.predictor import Predictor

    prompts, lengths = workload(seed=1)
    # A generous budget lets the first step wait for the first scores, so admission follows them.
    llm = engine("pars", pars_settings={"budget_ms": 10000})
    outputs = run(llm, prompts, lengths)
    scheduler = scheduler_of(llm)
    assert scheduler.counters.sized == N_REQUESTS and scheduler.counters.fallback_total == 0
    assert scheduler.sizes.batcher.prompts_scored == N_REQUESTS
    scores = Predictor.load(predictor_dir).score(prompts)
    admitted = [o.metrics.scheduled_ts for o in outputs]
    rho = spearmanr(admitted, scores).statistic
    assert rho > 0.8, rho


def test_injected_predictor_failure_keeps_arrival_order_and_counts_fallbacks(engine):
    prompts, lengths = workload(seed=2)
    llm = engine("pars")
    scheduler = scheduler_of(llm)

    def broken_predictor(texts):  # intentionally injected fault: a predictor that always raises
        raise RuntimeError("injected predictor failure")

    scheduler.sizes.batcher.score = broken_predictor
    outputs = run(llm, prompts, [8] * N_REQUESTS)
    admitted = [o.metrics.scheduled_ts for o in outputs]
    assert admitted == sorted(admitted), "fallback requests were not admitted in arrival order"
    assert scheduler.counters.fallback["predictor_error"] == N_REQUESTS
    assert scheduler.counters.sized == 0


def test_long_request_is_admitted_within_max_wait_despite_a_stream_of_short_ones(engine):
    # max_num_seqs 2: the vLLM CPU build dies (SIGILL) running with max_num_seqs 1 on this machine.
    max_wait = 1.5
    llm = engine("oracle", max_num_seqs=2, pars_settings={"aging_rate": 0.0, "max_wait_s": max_wait,
                                                                  "fcfs_wait_factor": float("inf")})
    core = llm.llm_engine
    core.add_request("long", "a long story please", params(20))
    stream_until = time.monotonic() + 3 * max_wait
    outputs = {}
    n_short = 0
    while core.has_unfinished_requests():
        if time.monotonic() < stream_until:
            for _ in range(2):  # more shorts arrive than finish: the queue never runs dry
                core.add_request(f"short{n_short}", f"short {n_short}", params(2))
                n_short += 1
        for out in core.step():
            if out.finished:
                outputs[out.request_id] = out
    long_out = outputs["long"]
    assert len(long_out.outputs[0].token_ids) == 20
    waited = long_out.metrics.scheduled_ts - long_out.metrics.queued_ts
    assert waited >= 0.8 * max_wait, f"shorts were not preferred before the bound ({waited:.2f}s)"
    assert waited <= max_wait + 0.5, f"starvation bound broken: waited {waited:.2f}s"
    started_later = [o for o in outputs.values() if o.metrics.scheduled_ts > long_out.metrics.scheduled_ts]
    assert started_later, "the stream had ended before the long request ran: the test proves nothing"
    assert len(outputs) == n_short + 1


def test_wrong_predictor_path_fails_at_engine_start_with_a_clear_message(tiny_model, tmp_path):
    from pars.integrations.vllm import build_llm

    with pytest.raises(Exception) as info:
        build_llm(tiny_model, "pars", predictor_dir=tmp_path / "missing", max_num_seqs=4, max_model_len=4096)
    chain, error = [], info.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    assert any("no predictor checkpoint" in message for message in chain), chain


def test_front_end_scores_order_the_queue_and_nothing_is_scored_in_the_engine(engine):
    from pars.scheduling.request_fields import SCORE_KEY

    prompts, lengths = workload(seed=3)
    scores = [float(s) for s in np.random.default_rng(3).normal(size=N_REQUESTS)]
    llm = engine("pars")
    params_list = [SamplingParams(max_tokens=n, ignore_eos=True, extra_args={SCORE_KEY: s}) for n, s in zip(lengths, scores)]
    outputs = llm.generate(prompts, params_list, use_tqdm=False)
    assert [len(o.outputs[0].token_ids) for o in outputs] == lengths
    scheduler = scheduler_of(llm)
    assert scheduler.counters.sized == N_REQUESTS and scheduler.counters.fallback_total == 0
    assert scheduler.sizes.batcher.prompts_scored == 0, "requests with a front-end score were scored again"
    rho = spearmanr([o.metrics.scheduled_ts for o in outputs], scores).statistic
    assert rho > 0.8, rho


def test_both_scheduler_flavours_construct_and_the_engine_gets_the_one_matching_its_setting(engine):
    from vllm.v1.core.sched.async_scheduler import AsyncScheduler

    from pars.integrations.vllm.scheduler import PARSAsyncScheduler, PARSScheduler

    sync = scheduler_of(engine("pars"))
    assert type(sync) is PARSScheduler and sync.vllm_config.scheduler_config.async_scheduling is False
    config = sync.vllm_config
    config.scheduler_config.async_scheduling = True  # what vLLM resolves to on GPUs
    try:
        built = PARSScheduler(vllm_config=config, kv_cache_config=sync.kv_cache_config,
                              structured_output_manager=sync.structured_output_manager, block_size=sync.block_size)
    finally:
        config.scheduler_config.async_scheduling = False
    assert type(built) is PARSAsyncScheduler and isinstance(built, AsyncScheduler)
    assert isinstance(built.waiting, type(sync.waiting)), "the async flavour lost the PARS waiting queue"
    built.shutdown()


def test_building_an_engine_leaves_the_variables_pars_sets_as_they_were(tiny_model, predictor_dir, monkeypatch):
    """vLLM itself exports variables while it builds an engine (LD_PRELOAD, ...); PARS's defaults must not
    leak: before this, build_llm left VLLM_CPU_KVCACHE_SPACE set for the whole process."""
    import os

    from pars.integrations.vllm import build_llm
    from pars.integrations.vllm.engine import CPU_DEFAULTS

    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    before = {name: os.environ.get(name) for name in CPU_DEFAULTS}
    llm = build_llm(tiny_model, "fcfs", max_num_seqs=2, max_model_len=512)
    try:
        assert {name: os.environ.get(name) for name in CPU_DEFAULTS} == before
    finally:
        llm.llm_engine.engine_core.shutdown()
