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
from pars.scoring.rank import AnchoredRank


QUANTILE_PROMPTS = ["Hi.", "Name a colour.", "Say hello.", "List three primes.", "Explain transformers in detail.",
                    "Write a long story about a lighthouse.", "Write an essay on the history of Rome."]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real encoder with a random head, with score quantiles recorded as `pars train` records them."""
    import numpy as np

    from pars.predictor import Predictor

    predictor = Predictor.untrained(seed=0)
    predictor.config.score_quantiles = np.sort(predictor.score(QUANTILE_PROMPTS)).tolist()
    return predictor.save(tmp_path_factory.mktemp("score-server") / "predictor")


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


def quantiles(checkpoint) -> list[float]:
    from pars.predictor.config import PredictorConfig

    return PredictorConfig.read(checkpoint).score_quantiles


def test_rank_is_the_share_of_the_checkpoints_held_out_scores_below_and_follows_the_score(server, checkpoint):
    answers = server.post("/score_batch", json={"prompts": QUANTILE_PROMPTS[:4]}).json()["results"]
    ranks = [a["rank"] for a in answers]
    assert all(0.0 <= r <= 1.0 for r in ranks)
    by_score = [a["rank"] for a in sorted(answers, key=lambda a: a["score"])]
    assert by_score == sorted(by_score), "a higher score never ranks lower"


def expected_scores(checkpoint, prompts: list[str]) -> list[float]:
    from pars.predictor import Predictor

    return [float(s) for s in Predictor.load(checkpoint).score(prompts)]


def test_score_reads_a_completion_prompt_or_the_last_user_turn_and_answers_score_and_priority(server, checkpoint):
    hello, story = expected_scores(checkpoint, ["Say hello.", "Write a long story about a lighthouse."])
    by_prompt = server.post("/score", json={"prompt": "Say hello."})
    assert by_prompt.status_code == 200
    assert by_prompt.json()["score"] == pytest.approx(hello, abs=1e-3)
    assert by_prompt.json()["priority"] == priority_of(by_prompt.json()["score"])
    assert by_prompt.json()["rank"] == pytest.approx(AnchoredRank(quantiles(checkpoint)).share_below(hello), abs=1e-3)
    chat = {"messages": [{"role": "system", "content": "You are a helpful assistant."},
                         {"role": "user", "content": "Say hello."}, {"role": "assistant", "content": "Hello!"},
                         {"role": "user", "content": "Write a long story about a lighthouse."}]}
    assert server.post("/score", json=chat).json()["score"] == pytest.approx(story, abs=1e-3)


def test_score_batch_answers_in_order_and_a_blank_or_unreadable_prompt_falls_back_without_failing(server, checkpoint):
    prompts = ["List three primes.", "   ", "Explain transformers in detail."]
    results = server.post("/score_batch", json={"prompts": prompts}).json()["results"]
    first, third = expected_scores(checkpoint, [prompts[0], prompts[2]])
    assert results[0]["score"] == pytest.approx(first, abs=1e-3) and results[2]["score"] == pytest.approx(third, abs=1e-3)
    assert results[1] == {"score": None, "priority": None, "rank": None, "fallback": "empty_prompt"}
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
