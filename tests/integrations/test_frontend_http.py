"""The PARS front end over real HTTP: `pars serve` (vLLM's OpenAI server + the scoring middleware) on 127.0.0.1.

Every server runs the tiny model with the real MiniLM predictor (random head: arbitrary but deterministic
scores) and --max-num-seqs 2. An ordered burst first parks two long "blocker" requests in both running
slots, then sends 16 chat requests that share one ~200-token system prompt, in DESCENDING order of their
user text's score (arrival order alone would give Spearman -1), waits until vLLM's /metrics shows all 16
waiting, and aborts the blockers by closing their streams: the queue then drains in the scheduler's order,
which each request's TTFT shows.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from pars.bench.http import (SETUPS, free_port, SYSTEM_PROMPT, ServerSettings, StreamedResponse, chat_body, http_client,
                             metric_value, running_server, send_burst, stream_chat)
from pars.metrics import spearman

MAX_TOKENS = 48
BLOCKER_TOKENS = 3000  # far longer than the test: the blockers are aborted, never finished
USER_PROMPTS = (
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Explain how a transformer neural network works, step by step, with equations.",
    'Translate "good morning" into Spanish.',
    "Write a 1000-word short story about a lighthouse keeper who finds a message in a bottle.",
    "List three prime numbers.",
    "Summarise the causes of the First World War in detail.",
    "Is 17 a prime number?",
    "Write a Python function that parses a CSV file and computes the mean of each column, with tests.",
    "Give me a recipe for banana bread.",
    "What year did the Berlin Wall fall?",
    "Compare the economic policies of Keynes and Hayek.",
    "Say hello.",
    "Draft a cover letter for a junior data analyst position.",
    "Define entropy in one sentence.",
    "Describe the water cycle for a ten-year-old.",
)


@contextmanager
def pars_server(tiny_model: Path, predictor_dir: Path, log_path: Path, mode: str,
                env: Mapping[str, str] | None = None) -> Iterator[str]:
    """`pars serve --policy pars --mode MODE` with --max-num-seqs 2; yields its base URL."""
    settings = ServerSettings(str(tiny_model), str(predictor_dir), port=free_port(), max_num_seqs=2, stream_interval=1)
    with running_server(settings, SETUPS[mode], log_path, {"VLLM_LOGGING_LEVEL": "INFO", **(env or {})}) as url:
        yield url


async def wait_for_metric(client: httpx.AsyncClient, name: str, at_least: float, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while metric_value((await client.get("/metrics")).text, name) < at_least:
        assert time.monotonic() < deadline, f"{name} did not reach {at_least} within {timeout_s} s"
        await asyncio.sleep(0.05)


async def ordered_burst(base_url: str, model: str, send_order: Sequence[int]) -> list[StreamedResponse]:
    """The 16 user prompts queued behind two blockers, sent in `send_order`; responses in prompt order."""
    async with http_client(base_url, 32) as client:
        started = time.monotonic()
        blockers = [asyncio.create_task(stream_chat(client, chat_body(model, f"Keep talking {i}.", BLOCKER_TOKENS),
                                                    started)) for i in range(2)]
        await wait_for_metric(client, "vllm:num_requests_running", 2)
        tasks = {}
        for i in send_order:
            body = chat_body(model, USER_PROMPTS[i], MAX_TOKENS, SYSTEM_PROMPT)
            tasks[i] = asyncio.create_task(stream_chat(client, body, started))
            await asyncio.sleep(0.01)  # arrival order = send order
        await wait_for_metric(client, "vllm:num_requests_waiting", len(send_order))
        assert not any(b.done() for b in blockers), "a blocker ended before the burst was queued"
        for blocker in blockers:
            blocker.cancel()  # closes its stream; vLLM aborts it and frees both slots at once
        await asyncio.gather(*blockers, return_exceptions=True)
        return [await tasks[i] for i in range(len(USER_PROMPTS))]


def assert_all_served(responses: Sequence[StreamedResponse]) -> None:
    assert [r.status for r in responses] == [200] * len(responses), [r.error for r in responses]
    assert [r.completion_tokens for r in responses] == [MAX_TOKENS] * len(responses)


def ttft_spearman_with(responses: Sequence[StreamedResponse], scores: np.ndarray) -> float:
    ttfts = np.array([r.first_chunk_s - r.sent_s for r in responses])
    return spearman(ttfts, scores)


@pytest.fixture(scope="module")
def user_scores(predictor_dir) -> np.ndarray:
    """What the served predictor should give each USER text (the system prompt is never scored)."""
    from pars.predictor import Predictor

    return np.asarray(Predictor.load(predictor_dir).score(list(USER_PROMPTS)))


@pytest.fixture(scope="module")
def pars_mode_server(tiny_model, predictor_dir, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    log_path = tmp_path_factory.mktemp("pars-mode") / "server.log"
    with pars_server(tiny_model, predictor_dir, log_path, "pars") as url:
        yield url, log_path


def test_pars_mode_serves_a_shared_system_prompt_burst_in_order_of_the_user_texts_score(
        pars_mode_server, tiny_model, user_scores):
    url, log_path = pars_mode_server
    assert len(set(np.round(user_scores, 4))) == len(USER_PROMPTS), "the test needs distinct scores"
    responses = asyncio.run(ordered_burst(url, str(tiny_model), np.argsort(-user_scores)))
    assert_all_served(responses)
    rho = ttft_spearman_with(responses, user_scores)
    assert rho > 0.5, f"TTFT vs the user text's score: Spearman {rho:.2f} (arrival order would give -1)"
    metrics = httpx.get(f"{url}/metrics").text
    assert metric_value(metrics, "pars_frontend_requests_total", outcome="scored") >= len(USER_PROMPTS)
    assert metric_value(metrics, "pars_frontend_scoring_seconds_count") >= len(USER_PROMPTS)
    assert "PARS predicted scheduler" in log_path.read_text(), "the PARS scheduler class was not plugged in"


def test_malformed_json_gets_vllms_400_and_other_routes_pass_through_the_middleware(pars_mode_server, tiny_model):
    url, _ = pars_mode_server
    with httpx.Client(base_url=url, timeout=60.0) as client:
        broken = client.post("/v1/completions", content=b'{"model": oops', headers={"content-type": "application/json"})
        assert broken.status_code == 400 and "error" in broken.json()
        not_an_object = client.post("/v1/chat/completions", json=[1, 2, 3])
        assert 400 <= not_an_object.status_code < 500 and "error" in not_an_object.json()
        models = client.get("/v1/models")
        assert models.status_code == 200
        assert [m["id"] for m in models.json()["data"]] == [str(tiny_model)]


def test_priority_mode_on_the_stock_scheduler_serves_the_burst_in_order_of_the_user_texts_score(
        tiny_model, predictor_dir, user_scores, tmp_path):
    with pars_server(tiny_model, predictor_dir, tmp_path / "server.log", "priority") as url:
        responses = asyncio.run(ordered_burst(url, str(tiny_model), np.argsort(-user_scores)))
        metrics = httpx.get(f"{url}/metrics").text
    assert_all_served(responses)
    rho = ttft_spearman_with(responses, user_scores)
    assert rho > 0.5, f"TTFT vs the user text's score: Spearman {rho:.2f} (arrival order would give -1)"
    assert metric_value(metrics, "pars_frontend_requests_total", outcome="scored") >= len(USER_PROMPTS)
    log_text = (tmp_path / "server.log").read_text()
    assert "'scheduling_policy': 'priority'" in log_text and "PARS predicted scheduler" not in log_text


def test_every_request_is_served_when_every_front_end_score_times_out(tiny_model, predictor_dir, tmp_path):
    # A real timeout: 1 microsecond is far less than a MiniLM forward pass, so every `wait_for` on the
    # scorer thread's future expires and the request goes on unscored (pars_fallback = "timeout").
    log_path = tmp_path / "server.log"
    with pars_server(tiny_model, predictor_dir, log_path, "pars", {"PARS_FRONTEND_TIMEOUT_S": "0.000001"}) as url:

        async def burst() -> list[StreamedResponse]:
            async with http_client(url, 32) as client:
                return await send_burst(client, [chat_body(str(tiny_model), text, MAX_TOKENS, SYSTEM_PROMPT)
                                                 for text in USER_PROMPTS])

        responses = asyncio.run(burst())
        metrics = httpx.get(f"{url}/metrics").text
    assert_all_served(responses)
    assert metric_value(metrics, "pars_frontend_requests_total", outcome="timeout") >= len(USER_PROMPTS)
    assert metric_value(metrics, "pars_frontend_requests_total", outcome="scored") == 0
    assert metric_value(metrics, "vllm:request_success_total", finished_reason="length") >= len(USER_PROMPTS)
    log_text = log_path.read_text()
    assert len(re.findall(r'"POST /v1/chat/completions HTTP/1.1" 200', log_text)) == len(USER_PROMPTS)
    assert "PARS predicted scheduler" in log_text


def test_pars_serve_reports_front_end_and_scheduler_series_on_metrics(pars_mode_server, tiny_model):
    """The scheduler's series come from the engine-core process (prometheus multiprocess mode), the
    front end's from the API server; a token-id prompt is the one the engine scores itself."""
    url, _ = pars_mode_server
    model = str(tiny_model)
    series = {
        "front_scored": ("pars_frontend_requests_total", {"outcome": "scored"}),
        "front_token_prompt": ("pars_frontend_requests_total", {"outcome": "token_prompt"}),
        "sched_sized": ("pars_scheduler_requests_total", {"policy": "predicted", "outcome": "sized"}),
        "sched_all": ("pars_scheduler_requests_total", {"policy": "predicted"}),
        "admitted": ("pars_scheduler_queue_wait_seconds_count", {"policy": "predicted"}),
    }
    with httpx.Client(base_url=url, timeout=120.0) as client:
        def read() -> dict[str, float]:
            text = client.get("/metrics").text
            return {key: metric_value(text, name, **labels) for key, (name, labels) in series.items()}

        before = read()
        for text in ("Say hello.", "List three prime numbers.", "Define entropy in one sentence."):
            body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 4}
            assert client.post("/v1/chat/completions", json=body).status_code == 200
        token_ids = {"model": model, "prompt": [5, 6, 7, 8, 9], "max_tokens": 4}
        assert client.post("/v1/completions", json=token_ids).status_code == 200
        deadline = time.monotonic() + 30
        while (after := read())["sched_all"] - before["sched_all"] < 4:
            assert time.monotonic() < deadline, f"scheduler series never reached /metrics: {after}"
            time.sleep(0.2)
    delta = {key: after[key] - before[key] for key in series}
    # The token-id request is either scored by the engine in time (sized) or runs first and is counted as
    # "left_before_score": exactly one outcome per request either way.
    assert delta["front_scored"] == 3 and delta["front_token_prompt"] == 1, delta
    assert delta["sched_all"] == 4 and delta["admitted"] == 4 and delta["sched_sized"] >= 3, delta
