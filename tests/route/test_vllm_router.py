"""vllm-router (the Rust load balancer from PyPI, started from its own package) in front of two REAL `pars serve`
replicas (tiny model) on 127.0.0.1: each replica scores and orders its own share, the router forwards request
bodies and streams unchanged, and when a replica dies its traffic moves. The kill test runs last in the module."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from pars.bench.http import free_port, metric_value, running_process, server_environment

ROUTER = Path(sys.executable).with_name("vllm-router")  # the console script of the `vllm-router` wheel


@pytest.fixture(scope="module")
def replicas(served) -> Iterator[dict]:
    assert ROUTER.exists(), f"{ROUTER} missing: the test extra installs vllm-router"
    root, model, predictor = served
    env = server_environment()
    with ExitStack() as stack:
        urls, processes = [], []
        for i in range(2):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            command = [sys.executable, "-m", "pars.cli", "serve", str(model), "--predictor", str(predictor),
                       "--port", str(port), "--max-num-seqs", "2", "--max-model-len", "1024", "--enforce-eager"]
            processes.append(stack.enter_context(running_process(command, env, url, root / f"replica{i}.log",
                                                                 start_timeout_s=300)))
            urls.append(url)
        yield {"urls": urls, "processes": processes, "model": str(model), "root": root, "env": env}


@contextmanager
def router(replicas: dict, policy: str) -> Iterator[httpx.Client]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(ROUTER), "--host", "127.0.0.1", "--port", str(port), "--worker-urls", *replicas["urls"],
               "--policy", policy, "--prometheus-port", str(free_port()), "--health-check-interval-secs", "1",
               "--health-failure-threshold", "1", "--worker-startup-timeout-secs", "60"]
    with running_process(command, replicas["env"], url, replicas["root"] / f"router-{policy}.log",
                         start_timeout_s=90), httpx.Client(base_url=url, timeout=120.0) as client:
        yield client


@pytest.fixture(scope="module")
def routed(replicas) -> Iterator[httpx.Client]:
    """vllm-router with round_robin in front of both replicas, for the tests that need no other policy."""
    with router(replicas, "round_robin") as client:
        yield client


def chat(model: str, i: int, tokens: int = 4, stream: bool = False) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": f"Question {i}: say something short."}],
            "max_tokens": tokens, "ignore_eos": True, "stream": stream}


def counts(urls: list[str], name: str = "pars_frontend_requests_total", **labels: str) -> list[float]:
    """One /metrics series per replica (default: the requests its front end scored)."""
    labels = labels or {"outcome": "scored"}
    return [metric_value(httpx.get(f"{url}/metrics").text, name, **labels) for url in urls]


@pytest.mark.parametrize("policy", ["round_robin", "power_of_two"])
def test_each_replica_scores_and_orders_its_share_of_a_burst(replicas, policy):
    before = counts(replicas["urls"])
    with router(replicas, policy) as client:
        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=str(client.base_url), timeout=120.0) as aclient:
                return await asyncio.gather(*(aclient.post("/v1/chat/completions", json=chat(replicas["model"], i,
                                                                                             tokens=3 + i % 4))
                                              for i in range(16)))

        responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 16
    # the body reached vLLM unchanged: each request's own max_tokens and ignore_eos were honoured
    assert [r.json()["usage"]["completion_tokens"] for r in responses] == [3 + i % 4 for i in range(16)]
    shares = [after - was for after, was in zip(counts(replicas["urls"]), before)]
    assert sum(shares) == 16, shares  # every request scored exactly once, by the replica that served it
    if policy == "round_robin":
        assert shares == [8, 8], shares
    time.sleep(1.0)  # the engine cores flush their counters
    sized = counts(replicas["urls"], "pars_scheduler_requests_total", outcome="sized")
    assert min(sized) > 0, f"a replica's PARS scheduler ordered nothing: {sized}"


def test_a_stream_passes_through_the_router_token_by_token(replicas, routed):
    with routed.stream("POST", "/v1/chat/completions", json=chat(replicas["model"], 0, tokens=6,
                                                                 stream=True)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    deltas = [json.loads(e)["choices"][0]["delta"].get("content") for e in events[:-1] if json.loads(e)["choices"]]
    assert sum(1 for d in deltas if d) >= 2, f"the stream came in one piece: {events}"


# Bad requests vLLM rejects: the router forwards these, and the replica's 4xx comes back unchanged ...
FORWARDED = {
    "min_tokens over max_tokens": {"min_tokens": 10},
    "unknown model": {"model": "no-such-model"},
    "vllm_xargs not an object": {"vllm_xargs": "x"},  # so vllm_xargs (PARS's oracle field) is forwarded too
}
# ... while a body that does not fit the router's own request types is answered by the router (plain text)
REFUSED_BY_THE_ROUTER = {
    "messages not a list": {"messages": "hello"},
    "negative max_tokens": {"max_tokens": -1},
}


def bad_chat(replicas: dict, fields: dict) -> dict:
    return {**chat(replicas["model"], 0), **fields}


@pytest.mark.parametrize("case", FORWARDED)
def test_a_bad_request_vllm_rejects_gets_the_replicas_own_4xx_unchanged(replicas, routed, case):
    body = bad_chat(replicas, FORWARDED[case])
    direct = httpx.post(f"{replicas['urls'][0]}/v1/chat/completions", json=body, timeout=60.0)
    through = routed.post("/v1/chat/completions", json=body)
    assert 400 <= direct.status_code < 500, direct.text
    assert (through.status_code, through.json()) == (direct.status_code, direct.json())


@pytest.mark.parametrize("case", [*REFUSED_BY_THE_ROUTER, "malformed JSON"])
def test_a_body_outside_the_routers_types_gets_the_routers_own_4xx(replicas, routed, case):
    if case == "malformed JSON":
        through = routed.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    else:
        through = routed.post("/v1/chat/completions", json=bad_chat(replicas, REFUSED_BY_THE_ROUTER[case]))
    assert through.status_code in (400, 422) and through.headers["content-type"].startswith("text/plain"), \
        (through.status_code, through.text)
    assert through.text.strip(), "a 4xx with no message"


def test_the_request_id_header_comes_back(replicas, routed):
    response = routed.post("/v1/chat/completions", json=chat(replicas["model"], 0), headers={"X-Request-Id": "r-42"})
    assert response.status_code == 200 and response.headers["x-request-id"] == "r-42"


def test_a_killed_replica_is_held_out_and_the_next_requests_all_succeed(replicas, routed):
    assert routed.post("/v1/chat/completions", json=chat(replicas["model"], 0)).status_code == 200
    dead = replicas["processes"][1]
    os.killpg(dead.pid, signal.SIGKILL)  # the whole replica: API server and engine core
    dead.wait(timeout=30)
    time.sleep(3.0)  # a few of the router's 1 s health checks
    live = replicas["urls"][:1]
    before = counts(live)[0]
    statuses = [routed.post("/v1/chat/completions", json=chat(replicas["model"], i)).status_code for i in range(8)]
    assert statuses == [200] * 8, statuses
    assert counts(live)[0] - before == 8, "the live replica did not serve them all"
