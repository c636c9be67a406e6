"""`pars score-server` over real HTTP on 127.0.0.1, with the real MiniLM encoder (random head)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import httpx
import pytest
from typer.testing import CliRunner

from pars.bench.http import free_port, metric_value, running_process
from pars.cli import app
from pars.scheduling.request_fields import priority_of


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from pars.predictor import Predictor

    return Predictor.untrained(seed=0).save(tmp_path_factory.mktemp("score-server") / "predictor")


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory) -> Iterator[httpx.Client]:
    port = free_port()
    command = [sys.executable, "-m", "pars.cli", "score-server", "--predictor", str(checkpoint), "--port", str(port),
               "--max-body-bytes", "4000", "--max-batch-items", "4"]
    log = tmp_path_factory.mktemp("score-server-log") / "server.log"
    url = f"http://127.0.0.1:{port}"
    with running_process(command, dict(os.environ), url, log, start_timeout_s=120):
        with httpx.Client(base_url=url, timeout=60.0) as client:
            yield client


def expected_scores(checkpoint, prompts: list[str]) -> list[float]:
    from pars.predictor import Predictor

    return [float(s) for s in Predictor.load(checkpoint).score(prompts)]


def test_score_reads_a_completion_prompt_or_the_last_user_turn_and_answers_score_and_priority(server, checkpoint):
    hello, story = expected_scores(checkpoint, ["Say hello.", "Write a long story about a lighthouse."])
    by_prompt = server.post("/score", json={"prompt": "Say hello."})
    assert by_prompt.status_code == 200
    assert by_prompt.json()["score"] == pytest.approx(hello, abs=1e-3)
    assert by_prompt.json()["priority"] == priority_of(by_prompt.json()["score"])
    chat = {"messages": [{"role": "system", "content": "You are a helpful assistant."},
                         {"role": "user", "content": "Say hello."}, {"role": "assistant", "content": "Hello!"},
                         {"role": "user", "content": "Write a long story about a lighthouse."}]}
    assert server.post("/score", json=chat).json()["score"] == pytest.approx(story, abs=1e-3)


def test_score_batch_answers_in_order_and_a_blank_or_unreadable_prompt_falls_back_without_failing(server, checkpoint):
    prompts = ["List three primes.", "   ", "Explain transformers in detail."]
    results = server.post("/score_batch", json={"prompts": prompts}).json()["results"]
    first, third = expected_scores(checkpoint, [prompts[0], prompts[2]])
    assert results[0]["score"] == pytest.approx(first, abs=1e-3) and results[2]["score"] == pytest.approx(third, abs=1e-3)
    assert results[1] == {"score": None, "priority": None, "fallback": "empty_prompt"}
    token_ids = server.post("/score", json={"prompt": [1, 2, 3]})
    assert token_ids.status_code == 200 and token_ids.json()["fallback"] == "token_prompt"


@pytest.mark.parametrize("content, status, message", [
    (b'{"prompt": oops', 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not valid JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (b'{"text": "hi"}', 400, '"prompt"'),
    (b'{"prompt": "' + b"x" * 5000 + b'"}', 413, "over the limit"),
])
def test_bad_requests_get_a_4xx_with_one_clear_message(server, content, status, message):
    response = server.post("/score", content=content, headers={"content-type": "application/json"})
    assert response.status_code == status and message in response.json()["error"]


@pytest.mark.parametrize("body, status, message", [
    ({"prompts": "one string"}, 400, "list of strings"),
    ({"prompts": ["a", 3]}, 400, "list of strings"),
    ({"prompts": ["a"] * 5}, 413, "over the limit of 4"),
])
def test_bad_batches_get_a_4xx(server, body, status, message):
    response = server.post("/score_batch", json=body)
    assert response.status_code == status and message in response.json()["error"]


def test_health_and_prometheus_metrics(server):
    assert server.get("/health").status_code == 200
    before = metric_value(server.get("/metrics").text, "pars_score_server_rejected_requests_total", status="400")
    server.post("/score", json={"prompt": "Count to three."})
    server.post("/score", json={"no": "prompt"})
    text = server.get("/metrics").text
    assert metric_value(text, "pars_score_server_prompts_total", outcome="scored") >= 1
    assert metric_value(text, "pars_score_server_rejected_requests_total", status="400") == before + 1
    assert metric_value(text, "pars_score_server_scoring_seconds_count") >= 1


def test_a_missing_checkpoint_is_one_error_line(tmp_path):
    result = CliRunner().invoke(app, ["score-server", "--predictor", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "no predictor checkpoint" in result.output
