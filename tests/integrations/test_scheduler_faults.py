"""The PARS scheduler's edges inside a real in-process vLLM engine (tiny model): preemption, every admission
queue, the score-wait budget and admission limit, aborts while a score is pending, the fallback decoder,
counter logging, shutdown. Predictor faults here are injected on purpose and say so."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from vllm import SamplingParams
from vllm.engine.arg_utils import EngineArgs

from pars.integrations.vllm import compat, scheduler_of
from pars.integrations.vllm.scheduler import RankedRequestQueue
from pars.scheduling.request_fields import SCORE_KEY


def scored_params(score: float, tokens: int = 4) -> SamplingParams:
    return SamplingParams(max_tokens=tokens, ignore_eos=True, extra_args={SCORE_KEY: score})


def run_to_completion(core) -> dict:
    outputs = {}
    while core.has_unfinished_requests():
        for out in core.step():
            if out.finished:
                outputs[out.request_id] = out
    return outputs


def test_preempted_requests_keep_their_size_and_all_finish(engine):
    # 12 blocks of 32 tokens hold about 3 of these requests: the 4 running ones preempt each other.
    llm = engine("pars", max_model_len=256, block_size=32, num_gpu_blocks_override=12)
    scheduler = scheduler_of(llm)
    preempted = []
    stock_preempt = scheduler._preempt_request

    def spy(request, *args, **kwargs):  # records each preemption; the stock method does the work
        stock_preempt(request, *args, **kwargs)
        preempted.append((request.request_id, request in scheduler.ranked, scheduler.ranked.has_size(request)))

    scheduler._preempt_request = spy
    prompts = [f"prompt number {i}, tell me more" for i in range(6)]
    outputs = llm.generate(prompts, [scored_params(float(i), 100) for i in range(6)], use_tqdm=False)
    assert [len(o.outputs[0].token_ids) for o in outputs] == [100] * 6
    assert preempted, "the KV cache was large enough: no preemption happened and the test proves nothing"
    assert all(queued and sized for _, queued, sized in preempted), preempted
    assert scheduler.counters.sized == 6 and scheduler.counters.fallback_total == 0, "a preempted request was re-sized"


def test_every_queue_vllm_admits_from_is_ranked_and_its_requests_finish(engine):
    llm = engine("pars")
    scheduler, core = scheduler_of(llm), llm.llm_engine
    others = [name for name in compat.admission_queues(scheduler) if name != "waiting"]
    assert others, "this vLLM keeps no second waiting queue: compat.ADMISSION_QUEUES is out of date"
    for name in others:  # 0.30: skipped_waiting; 0.31-0.33: kv_holding_waiting; 0.34 adds async_kv_waiting
        queue = getattr(scheduler, name)
        assert isinstance(queue, RankedRequestQueue), name
        for i, score in enumerate([3.0, 1.0, 2.0]):
            core.add_request(f"{name}{i}", f"request {i}", scored_params(score))
        requests = list(scheduler.waiting)
        # Move them where vLLM keeps waiting requests that wait on something else (remote KV, streaming
        # input): the queue vLLM drains before `waiting`, stock FCFS before PARS.
        scheduler.waiting.remove_requests(requests)
        for request in sorted(requests, key=lambda r: r.arrival_time):
            queue.add_request(request)
        scheduler.ranked_queues[name].set_clock(time.time())
        assert [r.request_id.split("-")[0] for r in queue] == [f"{name}1", f"{name}2", f"{name}0"]
        assert set(run_to_completion(core)) == {f"{name}{i}" for i in range(3)}


@pytest.mark.skipif(not hasattr(EngineArgs, "max_num_active_seqs"),
                    reason="this vLLM (0.30) has no --max-num-active-seqs: its admission limit is max_num_seqs")
def test_the_score_wait_counts_vllms_admission_limit_not_its_slot_count(engine):
    llm = engine("pars", max_num_seqs=4, max_num_active_seqs=2)
    scheduler, core = scheduler_of(llm), llm.llm_engine
    for i in range(3):  # no front-end score: each waits for the engine's own scorer
        core.add_request(f"r{i}", f"request {i}", SamplingParams(max_tokens=2, ignore_eos=True))
    assert scheduler.max_num_running_reqs == 4 and compat.admission_limit(scheduler) == 2
    assert scheduler._choice_matters(), "3 waiting requests, room for 2: the order matters, so scores are worth waiting for"
    run_to_completion(core)


def test_the_score_wait_is_skipped_while_admission_has_room(engine):
    llm = engine("pars", max_num_seqs=4)
    scheduler, core = scheduler_of(llm), llm.llm_engine
    for i in range(3):
        core.add_request(f"r{i}", f"request {i}", SamplingParams(max_tokens=2, ignore_eos=True))
    assert compat.admission_limit(scheduler) == 4
    assert not scheduler._choice_matters(), "3 waiting requests, room for 4: all are admitted whatever their scores"
    run_to_completion(core)


def test_a_step_waits_for_scores_at_most_its_budget(engine):
    llm = engine("pars", max_num_seqs=2, pars_settings={"budget_ms": 200})
    scheduler, core = scheduler_of(llm), llm.llm_engine
    release = threading.Event()
    real = scheduler.sizes.batcher.score

    def hung(texts):  # injected fault: a predictor that hangs until released
        release.wait(10)
        return real(texts)

    scheduler.sizes.batcher.score = hung
    for i in range(4):
        core.add_request(f"r{i}", f"request {i}", SamplingParams(max_tokens=2, ignore_eos=True))
    started = time.monotonic()
    core.step()
    waited = time.monotonic() - started
    release.set()
    assert 0.18 <= waited < 2.0, f"the step waited {waited:.2f} s for scores with a 0.2 s budget"
    run_to_completion(core)


def test_a_request_aborted_while_its_score_is_pending_is_never_scored_or_counted(engine):
    llm = engine("pars", max_num_seqs=2)
    scheduler, core = scheduler_of(llm), llm.llm_engine
    release, scored = threading.Event(), []
    real = scheduler.sizes.batcher.score

    def hung(texts):  # injected fault: the first batch hangs until released
        release.wait(10)
        scored.extend(texts)
        return real(texts)

    scheduler.sizes.batcher.score = hung
    core.add_request("kept", "the request that is kept", SamplingParams(max_tokens=2, ignore_eos=True))
    time.sleep(0.1)  # "kept" is in the hung batch
    core.add_request("aborted", "the request that is aborted", SamplingParams(max_tokens=2, ignore_eos=True))
    core.abort_request(["aborted"])
    release.set()
    assert set(run_to_completion(core)) == {"kept"}
    scheduler.sizes.close()  # lets the running batch end (2 s at most) and drains the to-do list
    assert scheduler.sizes.batcher.abandoned == 1
    assert "the request that is aborted" not in scored
    assert scheduler.counters.fallback["left_before_score"] >= 1, "the aborted request was not counted"
    assert scheduler.counters.sized + scheduler.counters.fallback_total == 2, "each request is counted once"
    assert not scheduler.sizes.has_pending()


def test_the_fallback_decoder_reads_the_served_models_tokens_and_rejects_ids_outside_its_vocabulary(engine, tiny_model):
    from transformers import AutoTokenizer

    from pars.integrations.vllm.scheduler import _tokenizer_decoder

    scheduler = scheduler_of(engine("pars"))
    decode = _tokenizer_decoder(scheduler.vllm_config)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    ids = tokenizer.encode("write a short poem", add_special_tokens=True)
    assert decode(ids).strip() == "write a short poem"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        decode([*ids, len(tokenizer) + 5])


def test_counters_are_logged_and_the_scorer_closes_at_shutdown(engine, caplog):
    llm = engine("pars")
    scheduler = scheduler_of(llm)
    llm.generate(["one prompt"], [scored_params(1.0)], use_tqdm=False)
    logger = logging.getLogger("vllm.pars")
    logger.addHandler(caplog.handler)  # vLLM's logger does not propagate to the root logger
    try:
        scheduler.shutdown()
    finally:
        logger.removeHandler(caplog.handler)
    assert "PARS predicted counters at shutdown: sized=1 fallback=0" in caplog.text
    assert scheduler.sizes.batcher.submit([1, 2, 3]).result(1).reason == "scorer_closed"
