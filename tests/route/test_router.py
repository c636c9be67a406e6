"""`pars route` over real HTTP in front of two REAL stock vLLM servers (`--scheduling-policy priority`, tiny
model, API key) on 127.0.0.1. The last test kills one upstream, so it runs last in this module."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from pars.bench.http import free_port, metric_value, running_process, server_environment

API_KEY = "sk-router-test"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def stack(served) -> Iterator[dict]:
    root, model, predictor = served
    env = server_environment()
    with ExitStack() as stack:
        upstreams, processes = [], []
        for i in range(2):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--port",
                       str(port), "--scheduling-policy", "priority", "--max-num-seqs", "2", "--max-model-len", "4096",
                       "--enforce-eager", "--api-key", API_KEY]
            processes.append(stack.enter_context(running_process(command, env, url, root / f"upstream{i}.log")))
            upstreams.append(url)
        port = free_port()
        router_url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "pars.cli", "route", "--upstream", ",".join(upstreams), "--predictor",
                   str(predictor), "--port", str(port), "--max-body-bytes", "100000", "--log-lengths",
                   str(root / "lengths.jsonl")]
        stack.enter_context(running_process(command, env, router_url, root / "router.log", start_timeout_s=120))
        client = stack.enter_context(httpx.Client(base_url=router_url, timeout=120.0))
        yield {"client": client, "upstreams": upstreams, "processes": processes, "model": str(model),
               "predictor": predictor, "log": root / "lengths.jsonl", "router_url": router_url}


def completion(model: str, stream: bool = False, tokens: int = 4) -> dict:
    return {"model": model, "prompt": "Say something short.", "max_tokens": tokens, "ignore_eos": True, "stream": stream}


def chat(model: str, stream: bool = False, tokens: int = 4) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "Say something short."}], "max_tokens": tokens,
            "ignore_eos": True, "stream": stream, **({"stream_options": {"include_usage": True}} if stream else {})}


def streamed_tokens(response: httpx.Response) -> int | None:
    tokens = None
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            usage = json.loads(line[len("data: "):]).get("usage")
            tokens = usage["completion_tokens"] if usage else tokens
    return tokens


@pytest.mark.parametrize("path, body", [("/v1/completions", completion), ("/v1/chat/completions", chat)])
def test_completions_and_chat_streamed_and_not_reach_vllm_with_a_priority(stack, path, body):
    client, model = stack["client"], stack["model"]
    plain = client.post(path, json=body(model), headers=AUTH)
    assert plain.status_code == 200, plain.text
    assert plain.json()["usage"]["completion_tokens"] == 4
    with client.stream("POST", path, json={**body(model, stream=True), "stream_options": {"include_usage": True}},
                       headers=AUTH) as streamed:
        assert streamed.status_code == 200 and streamed_tokens(streamed) == 4
    # stock vLLM with --scheduling-policy priority accepted the router's integer priority on every request
    assert metric_value(client.get("/metrics").text, "pars_router_priority_count") >= 2


def test_headers_and_status_codes_pass_through(stack):
    client, model = stack["client"], stack["model"]
    unauthorised = client.post("/v1/completions", json=completion(model))  # no Authorization: vLLM says 401
    assert unauthorised.status_code == 401
    assert client.get("/v1/models", headers=AUTH).json()["data"][0]["id"] == model
    unknown_model = client.post("/v1/completions", json=completion("no-such-model"), headers=AUTH)
    assert unknown_model.status_code == 404


def test_two_upstreams_share_the_load(stack):
    client, model = stack["client"], stack["model"]
    for _ in range(6):
        assert client.post("/v1/completions", json=completion(model), headers=AUTH).status_code == 200
    text = client.get("/metrics").text
    sent = [metric_value(text, "pars_router_requests_total", replica=url) for url in stack["upstreams"]]
    assert all(n >= 2 for n in sent), sent


@pytest.mark.parametrize("content, status", [(b'{"model": oops', 400), (b'{"model": "m"}', 400), (b"[1]", 400),
                                             (b'{"prompt": "' + b"x" * 200_000 + b'"}', 413)])
def test_bad_requests_are_answered_by_the_router_with_a_clear_message(stack, content, status):
    response = stack["client"].post("/v1/completions", content=content, headers={"content-type": "application/json"})
    assert response.status_code == status and response.json()["error"]["message"]


def test_a_client_that_disconnects_mid_stream_aborts_the_upstream_request(stack):
    client, model = stack["client"], stack["model"]

    def upstream_total(name: str) -> float:
        return sum(metric_value(httpx.get(f"{url}/metrics", headers=AUTH).text, name) for url in stack["upstreams"])

    before = upstream_total("vllm:generation_tokens_total")
    with client.stream("POST", "/v1/completions", json=completion(model, stream=True, tokens=3000), headers=AUTH) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                break  # the first token arrived: leave
    deadline = time.monotonic() + 30
    while upstream_total("vllm:num_requests_running") > 0:
        assert time.monotonic() < deadline, "the upstream request ran on after the client left"
        time.sleep(0.2)
    generated = upstream_total("vllm:generation_tokens_total") - before
    assert generated < 1500, f"{generated} of 3000 tokens were generated for a client that had left"


def test_the_length_log_records_each_finished_request_and_trains_a_ranker(stack, tmp_path):
    from typer.testing import CliRunner

    from pars.cli import app
    from pars.data import load_records

    client, model = stack["client"], stack["model"]
    texts = [f"Question number {i}: tell me about topic {i}." for i in range(16)]
    for i, text in enumerate(texts):
        body = ({"model": model, "prompt": text, "max_tokens": 3 + i % 3, "ignore_eos": True} if i % 2 else
                {"model": model, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
                 "max_tokens": 3 + i % 3, "ignore_eos": True, "stream": True})
        with client.stream("POST", "/v1/completions" if i % 2 else "/v1/chat/completions", json=body, headers=AUTH) as r:
            assert r.status_code == 200
            r.read()
    rows = {r.prompt: r for r in load_records(stack["log"])}
    for i, text in enumerate(texts):
        assert rows[text].model == model
        if i % 2:  # from the answer's usage: exact
            assert rows[text].response_tokens == 3 + i % 3
        else:  # a stream without a usage chunk: counted from its text chunks (a token without text is missed)
            assert 1 <= rows[text].response_tokens <= 3 + i % 3
    result = CliRunner().invoke(app, ["train", "--init-from", str(stack["predictor"]), "--data", str(stack["log"]),
                                      "--freeze-encoder", "--head-epochs", "2", "--batch-size", "4",
                                      "--out", str(tmp_path / "from-log")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-log" / "model.safetensors").exists()


def test_pars_collect_measures_an_endpoint_into_a_length_log(stack, tmp_path):
    from typer.testing import CliRunner

    from pars.cli import app
    from pars.data import load_records

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Say hi.\n\nName a colour.\nCount to five.\n")
    out = tmp_path / "collected.jsonl"
    result = CliRunner().invoke(app, ["collect", "--endpoint", stack["router_url"], "--model", stack["model"],
                                      "--prompts", str(prompts), "--out", str(out), "--max-tokens", "6",
                                      "--api-key", API_KEY])
    assert result.exit_code == 0, result.output
    rows = load_records(out)
    assert sorted(r.prompt for r in rows) == ["Count to five.", "Name a colour.", "Say hi."]
    assert all(1 <= r.response_tokens <= 6 for r in rows)


QUEUED_PROMPTS = [
    "Say yes.", "Write a long, detailed essay on the history of the Roman Empire.", "What is 2 + 2?",
    "List twenty ideas for a birthday party, each with a paragraph of explanation.", "Name a colour.",
    "Explain how a transformer language model works, step by step, with examples.", "Translate 'cat' to French.",
    "Write a Python program that implements a red-black tree, with comments and tests.", "Is water wet?",
    "Describe your ideal city in detail: transport, housing, parks, schools and work.", "Hi!",
    "Summarise the plot of every Harry Potter book, chapter by chapter.",
]


def test_under_load_each_replica_serves_its_queue_in_the_routers_priority_order(stack):
    """The priority reaches vLLM: with every slot held by a long request, the requests queued behind them on a
    replica finish in the order of the priorities the router gave them (lower first)."""
    model, upstreams = stack["model"], stack["upstreams"]

    def upstream_total(name: str) -> float:
        return sum(metric_value(httpx.get(f"{url}/metrics", headers=AUTH).text, name) for url in upstreams)

    async def run() -> list[tuple[str, int, float]]:
        async with httpx.AsyncClient(base_url=stack["router_url"], timeout=300.0, headers=AUTH) as client:
            # the same prompt four times: the same predicted work, so least-work puts two on each replica
            blockers = [asyncio.create_task(client.post("/v1/completions", json=completion(model, tokens=3000)))
                        for _ in range(4)]
            deadline = time.monotonic() + 60
            while upstream_total("vllm:num_requests_running") < 4:
                assert time.monotonic() < deadline, "the four long requests never all ran"
                await asyncio.sleep(0.05)

            async def queued(prompt: str) -> tuple[str, int, float]:
                body = {"model": model, "prompt": prompt, "max_tokens": 24, "ignore_eos": True}
                response = await client.post("/v1/completions", json=body)
                assert response.status_code == 200, response.text
                return response.headers["x-pars-replica"], int(response.headers["x-pars-priority"]), time.monotonic()

            tasks = [asyncio.create_task(queued(p)) for p in QUEUED_PROMPTS]
            while upstream_total("vllm:num_requests_waiting") < len(QUEUED_PROMPTS):
                assert upstream_total("vllm:num_requests_running") == 4, "a long request ended before all were queued"
                await asyncio.sleep(0.05)
            results = await asyncio.gather(*tasks)
            assert all(b.status_code == 200 for b in await asyncio.gather(*blockers))
            return results

    results = asyncio.run(run())
    compared, out_of_order = 0, []
    for a in results:
        for b in results:
            if a[0] == b[0] and a[1] < b[1]:  # same replica, a has the lower (earlier) priority
                compared += 1
                if a[2] > b[2] + 0.05:  # finished later than b, beyond two answers of one engine step
                    out_of_order.append((a[1], b[1]))
    assert compared >= 10, results
    assert not out_of_order, f"served against priority: {out_of_order} (replica, priority, finish): {results}"


def test_without_scoring_the_router_is_a_plain_balancer_and_sets_no_priority(stack, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "pars.cli", "route", "--upstream", ",".join(stack["upstreams"]), "--port",
               str(port), "--balancer", "round-robin", "--no-score", "--predictor", str(tmp_path / "not-needed")]
    with running_process(command, server_environment(), url, tmp_path / "router.log", start_timeout_s=60), \
            httpx.Client(base_url=url, timeout=60.0, headers=AUTH) as client:
        answers = [client.post("/v1/completions", json=completion(stack["model"])) for _ in range(4)]
        assert [a.status_code for a in answers] == [200] * 4
        assert all("x-pars-priority" not in a.headers for a in answers)
        assert {a.headers["x-pars-replica"] for a in answers} == set(stack["upstreams"])  # round-robin: both
        assert metric_value(client.get("/metrics").text, "pars_router_scoring_seconds_count") == 0


def test_an_upstream_killed_mid_test_leaves_the_router_serving(stack):
    client, model = stack["client"], stack["model"]
    stack["processes"][1].kill()
    stack["processes"][1].wait(timeout=30)
    statuses = [client.post("/v1/completions", json=completion(model), headers=AUTH).status_code for _ in range(6)]
    assert statuses == [200] * 6, statuses
    dead = stack["upstreams"][1]
    # held out either by a refused connection (retried on the live replica) or by its failed health check, which
    # runs every 2 s: the six requests may all have gone to the live replica (least-work breaks ties by requests
    # sent so far, and earlier tests sent more to one replica than the other)
    deadline = time.monotonic() + 10
    while metric_value(client.get("/metrics").text, "pars_router_replica_healthy", replica=dead) != 0:
        assert time.monotonic() < deadline, "the killed replica was never held out"
        time.sleep(0.2)
    assert client.get("/health").status_code == 200
