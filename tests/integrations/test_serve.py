"""`pars serve`: the command line it builds, and a real server answering on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from pars.bench.http import free_port, wait_until_healthy
from pars.integrations.vllm import POLICIES, serve_argv
from pars.integrations.vllm.metrics import MULTIPROC_ENV, metrics_dir
from pars.integrations.vllm.serve import MIDDLEWARE


def test_every_policy_builds_a_server_command_on_localhost():
    for name, policy in POLICIES.items():
        argv, env = serve_argv("model-dir", name, port=8123, max_num_seqs=4, extra_args=["--enforce-eager"])
        assert argv[argv.index("--host") + 1] == "127.0.0.1"
        assert argv[-1] == "--enforce-eager" and argv[argv.index("--max-num-seqs") + 1] == "4"
        if policy.scheduler_cls is None:
            assert "--scheduler-cls" not in argv
        else:
            assert argv[argv.index("--scheduler-cls") + 1] == policy.scheduler_cls
        if policy.uses_predictor:
            config = json.loads(argv[argv.index("--additional-config") + 1])
            assert config["pars"]["predictor"] == str(policy.default_predictor_dir())
            assert argv[argv.index("--middleware") + 1] == MIDDLEWARE
            assert env == {"PARS_PREDICTOR": str(policy.default_predictor_dir()), "PARS_FRONT_END_MODE": "pars",
                           MULTIPROC_ENV: str(metrics_dir(8123))}
        else:
            assert "--middleware" not in argv and env == {MULTIPROC_ENV: str(metrics_dir(8123))}


def test_priority_mode_runs_stock_vllm_priority_scheduling_with_the_front_end_scorer():
    argv, env = serve_argv("model-dir", "pars", predictor_dir="ckpt", mode="priority")
    assert argv[argv.index("--scheduling-policy") + 1] == "priority"
    assert "--scheduler-cls" not in argv and argv[argv.index("--middleware") + 1] == MIDDLEWARE
    assert env == {"PARS_PREDICTOR": "ckpt", "PARS_FRONT_END_MODE": "priority", MULTIPROC_ENV: str(metrics_dir(8000))}


@pytest.mark.parametrize(("policy", "mode", "message"), [
    ("sjf-magic", "pars", "unknown policy"),
    ("pars", "fastest", "unknown mode"),
    ("oracle", "priority", "uses none"),
])
def test_bad_policy_or_mode_is_rejected(policy, mode, message):
    with pytest.raises(ValueError, match=message):
        serve_argv("model-dir", policy, mode=mode)


def additional_config(argv: list[str]) -> dict:
    assert argv.count("--additional-config") == 1, argv
    return json.loads(argv[argv.index("--additional-config") + 1])


@pytest.mark.parametrize("user_args", [
    ["--additional-config", '{"pars": {"predictor": "X", "aging_rate": 0.1}, "other": 1}'],
    ['--additional-config={"pars": {"predictor": "X", "aging_rate": 0.1}, "other": 1}'],
    ["--additional-config.pars.predictor", "X", "--additional-config.pars.aging_rate=0.1", "--additional-config.other",
     "1"],
], ids=["json", "json-equals", "dotted"])
def test_a_users_additional_config_pars_keys_are_merged_and_its_predictor_is_the_one_served(user_args):
    argv, env = serve_argv("model-dir", "pars", extra_args=[*user_args, "--enforce-eager"])
    assert additional_config(argv) == {"pars": {"predictor": "X", "aging_rate": 0.1}, "other": 1}
    assert argv[-1] == "--enforce-eager"
    assert env["PARS_PREDICTOR"] == "X"  # the front-end scorer loads the same checkpoint as the scheduler
    assert env["PARS_AGING_RATE"] == "0.1"


def test_additional_config_predictor_reaches_the_front_end_in_priority_mode():
    argv, env = serve_argv("model-dir", "pars", mode="priority",
                           extra_args=["--additional-config", '{"pars": {"predictor": "X"}}'])
    assert env["PARS_PREDICTOR"] == "X"
    assert additional_config(argv) == {"pars": {"predictor": "X"}}


def test_the_same_predictor_given_twice_is_fine_and_different_ones_are_an_error():
    same = ["--additional-config", '{"pars": {"predictor": "./ckpt"}}']
    argv, env = serve_argv("model-dir", "pars", "ckpt", extra_args=same)
    assert env["PARS_PREDICTOR"] == "ckpt" and additional_config(argv)["pars"]["predictor"] == "ckpt"
    with pytest.raises(ValueError, match="--predictor ckpt .* pars.predictor other"):
        serve_argv("model-dir", "pars", "ckpt", extra_args=["--additional-config", '{"pars": {"predictor": "other"}}'])


@pytest.mark.parametrize(("extra", "message"), [
    (["--additional-config", "{not json"], "not valid JSON"),
    (["--additional-config", "[1]"], "JSON object"),
    (["--additional-config"], "needs a JSON value"),
    (["--additional-config", '{"pars": {"agin_rate": 1}}'], "unknown"),
    (["--additional-config", '{"pars": {"max_batch": 0}}'], "max_batch"),
])
def test_a_bad_additional_config_is_rejected_before_the_server_starts(extra, message):
    with pytest.raises(ValueError, match=message):
        serve_argv("model-dir", "pars", extra_args=extra)


def test_pars_serve_answers_completions_and_chat_on_localhost(tiny_model, predictor_dir, tmp_path):
    port = free_port()
    log_path = tmp_path / "server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "INFO"}  # the check reads INFO lines
    env.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)  # the real server layout: engine core in its own process
    command = [sys.executable, "-m", "pars.cli", "serve", str(tiny_model), "--policy", "pars",
               "--predictor", str(predictor_dir), "--port", str(port), "--max-num-seqs", "4",
               "--max-model-len", "4096", "--enforce-eager"]
    with log_path.open("w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0) as client:
            wait_until_healthy(f"http://127.0.0.1:{port}", server, 240.0, log_path)
            completion = client.post("/v1/completions", json={
                "model": str(tiny_model), "prompt": "Tell me about rivers", "max_tokens": 7,
                "ignore_eos": True, "vllm_xargs": {"pars_true_length": 7}}).json()
            assert completion["usage"]["completion_tokens"] == 7
            chat = client.post("/v1/chat/completions", json={
                "model": str(tiny_model), "messages": [{"role": "user", "content": "Hi there"}],
                "max_tokens": 5, "ignore_eos": True}).json()
            assert chat["usage"]["completion_tokens"] == 5
            assert chat["choices"][0]["message"]["role"] == "assistant"
    finally:
        server.terminate()
        server.wait(timeout=60)
    log_text = log_path.read_text()
    assert "PARS predicted scheduler" in log_text, "the PARS scheduler was not plugged in"


DP_QUESTIONS = ("Hi", "What is 2+2?", "Name a colour.", "Translate 'cat' into French.",
                "Write a long, detailed essay on the causes and consequences of the French Revolution.",
                "Explain step by step how a compiler turns source code into machine code, with examples.",
                "List ten ideas for a birthday party and describe each one in a paragraph.",
                "Summarise the plot of Hamlet.")


def test_pars_serve_with_two_data_parallel_engine_cores_orders_in_each(tiny_model, student_dir, tmp_path):
    """vLLM's own scale-out: with --data-parallel-size 2 the front end scores each request once and each engine
    core runs the PARS scheduler on the requests it gets. One slot per core: a long request pinned to each rank
    (vLLM's X-data-parallel-rank header) holds it while eight more queue there, so each rank's admission order
    (TTFT) must follow the front end's scores; /metrics counts each rank under its `engine` label. The scorer is
    the distilled student, as `pars serve` runs by default: the teacher on its niced thread, starved by two busy
    engine cores on a slow 2-core CI machine, once timed out on all 18 requests."""
    import asyncio

    from pars.bench.http import (chat_body, http_client, metric_value, running_process, server_environment,
                                 stream_chat)
    from pars.metrics import spearman
    from pars.predictor import load_ranker

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    model = str(tiny_model)
    command = [sys.executable, "-m", "pars.cli", "serve", model, "--predictor", str(student_dir),
               "--port", str(port), "--max-num-seqs", "1", "--max-model-len", "512", "--enforce-eager",
               "--data-parallel-size", "2"]
    env = server_environment({"VLLM_LOGGING_LEVEL": "INFO"})
    log = tmp_path / "server.log"
    scores = load_ranker(student_dir).score(list(DP_QUESTIONS))

    async def ordered_on(client: httpx.AsyncClient, rank: int, started: float) -> list[float]:
        """TTFT of each question on `rank`, sent while a 300-token request holds the rank's only slot."""
        pin = {"X-data-parallel-rank": str(rank)}
        blocker = asyncio.create_task(stream_chat(client, chat_body(model, "Tell me a story.", 300), started, pin))
        while metric_value((await client.get("/metrics")).text, "vllm:num_requests_running", engine=str(rank)) < 1:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the blocker is decoding
        answers = await asyncio.gather(*(stream_chat(client, chat_body(model, q, 4), started, pin)
                                         for q in DP_QUESTIONS))
        assert (await blocker).completion_tokens == 300
        assert [a.completion_tokens for a in answers] == [4] * len(DP_QUESTIONS)
        return [a.first_chunk_s - a.sent_s for a in answers]

    async def both_ranks() -> list[list[float]]:
        async with http_client(url, 2 * len(DP_QUESTIONS) + 8) as client:
            started = time.monotonic()
            return list(await asyncio.gather(*(ordered_on(client, rank, started) for rank in (0, 1))))

    with running_process(command, env, url, log, start_timeout_s=300):
        ttfts = asyncio.run(both_ranks())
        time.sleep(1.0)  # the engine cores flush their last counters
        metrics = httpx.get(f"{url}/metrics").text
    n = len(DP_QUESTIONS) + 1
    pars_series = "\n".join(line for line in metrics.splitlines() if line.startswith("pars_") and "_bucket" not in line)
    assert metric_value(metrics, "pars_frontend_requests_total", outcome="scored") == 2 * n, pars_series
    for rank, rank_ttfts in enumerate(ttfts):
        rho = spearman(rank_ttfts, scores)
        assert rho >= 0.9, f"rank {rank}: TTFT does not follow the scores (Spearman {rho:.2f}): {rank_ttfts}"
        assert metric_value(metrics, "vllm:request_success_total", engine=str(rank)) == n
        assert metric_value(metrics, "pars_scheduler_requests_total", engine=str(rank), outcome="sized") == n, \
            pars_series
    text = log.read_text()
    assert "EngineCore_DP0" in text and "EngineCore_DP1" in text
    assert text.count("PARS predicted scheduler") == 2, "each engine core runs its own PARS scheduler"
