"""`pars bench http`'s pure parts: server commands, response checks, /metrics counts and the report rows.

The real servers are exercised by tests/integrations/test_frontend_http.py (same helpers, real HTTP); the last test
here checks `running_process` stops a server's children with a stand-in server.
"""

from __future__ import annotations

import json
import math

import pytest

from pars.bench.http import (SETUPS, SYSTEM_PROMPT, FrontEndCounts, HttpResult, HttpRun, ServerSettings, SetupRecord,
                             StreamedResponse, chat_body, check_responses, metric_value, timings)
from pars.bench.http_report import markdown, result_rows, settings_dict, write_outputs
from pars.bench.latency import summarise
from pars.bench.serving import BenchmarkError
from pars.bench.workload import WorkloadRequest

METRICS = """# TYPE pars_frontend_requests_total counter
pars_frontend_requests_total{outcome="scored"} 5.0
pars_frontend_requests_total{outcome="timeout"} 2.0
# TYPE pars_frontend_scoring_seconds histogram
pars_frontend_scoring_seconds_sum 0.7
pars_frontend_scoring_seconds_count 7.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 3.0
"""


def test_each_setup_starts_pars_serve_with_its_policy_and_mode_and_only_scored_setups_get_the_predictor():
    settings = ServerSettings("model-dir", "ckpt", port=8123, max_num_seqs=4, stream_interval=8)
    for name, setup in SETUPS.items():
        command = settings.command(setup)
        assert command[2:5] == ["pars.cli", "serve", "model-dir"]
        assert command[command.index("--policy") + 1] == setup.policy
        assert command[command.index("--mode") + 1] == setup.mode
        assert command[command.index("--stream-interval") + 1] == "8"
        assert ("--predictor" in command) == (name != "fcfs")
    assert SETUPS["priority"].mode == "priority" and SETUPS["pars"].mode == "pars"
    env = settings.environment({"PARS_FRONTEND_TIMEOUT_S": "2"})
    assert env["OMP_NUM_THREADS"] == "1" and env["PARS_FRONTEND_TIMEOUT_S"] == "2"
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in env


def test_a_chat_body_puts_the_shared_system_prompt_before_the_user_text_and_asks_for_exact_tokens():
    body = chat_body("m", "hi", 7, SYSTEM_PROMPT)
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["max_tokens"] == 7 and body["ignore_eos"] and body["stream"]
    assert body["stream_options"] == {"include_usage": True}
    assert [m["role"] for m in chat_body("m", "hi", 7)["messages"]] == ["user"]


def test_a_wrong_status_or_token_count_fails_the_run_loudly():
    good = StreamedResponse(200, 0.0, 0.1, 0.5, 7)
    check_responses([good], [7], "ok")
    with pytest.raises(BenchmarkError, match="HTTP 400"):
        check_responses([StreamedResponse(400, 0.0, None, 0.1, None, "bad")], [7], "t")
    with pytest.raises(BenchmarkError, match="6 completion tokens"):
        check_responses([StreamedResponse(200, 0.0, 0.1, 0.5, 6)], [7], "t")
    with pytest.raises(BenchmarkError, match="None completion tokens"):
        check_responses([StreamedResponse(200, 0.0, None, 0.5, None)], [7], "t")


def test_front_end_counts_come_from_prometheus_text_and_subtract_per_burst():
    assert metric_value(METRICS, "vllm:num_requests_waiting") == 3.0
    assert metric_value(METRICS, "pars_frontend_requests_total", outcome="timeout") == 2.0
    counts = FrontEndCounts.read(METRICS) - FrontEndCounts(1.0, 0.0, 0.1)
    assert (counts.scored, counts.fallback) == (4.0, 2.0)
    assert counts.mean_scoring_ms == pytest.approx(100.0)
    assert FrontEndCounts.read("") == FrontEndCounts(0, 0, 0) and math.isnan(FrontEndCounts(0, 0, 0).mean_scoring_ms)


def _run(setup: str, system_prompt: bool, finish_s: float) -> HttpRun:
    responses = (StreamedResponse(200, 0.0, 0.1, finish_s, 4), StreamedResponse(200, 0.0, 0.2, 2 * finish_s, 4))
    return HttpRun(setup, system_prompt, summarise(timings(responses)), 1.0, 1.0, responses,
                   None if setup == "fcfs" else FrontEndCounts(2, 0, 0.02))


def test_rows_compare_each_setup_with_fcfs_of_the_same_system_prompt_variant(tmp_path):
    requests = tuple(WorkloadRequest(i, f"p{i}", 0.0, 4, 4) for i in range(2))
    result = HttpResult(requests, (0.1, 0.2), "test prompts",
                        [_run("fcfs", False, 1.0), _run("fcfs", True, 2.0), _run("pars", False, 0.5), _run("pars", True, 1.0)],
                        [SetupRecord("fcfs", "stock", 1.0, (1.0, 1.0, 1.0), (2.0, 2.0, 2.0)),
                         SetupRecord("pars", "pars", 1.0, (2.0, 2.0, 2.0), (3.0, 3.0, 3.0))])
    rows = {(r["setup"], r["system_prompt"]): r for r in result_rows(result)}
    assert rows[("pars", False)]["e2e_mean_vs_fcfs"] == pytest.approx(0.5)
    assert rows[("pars", True)]["e2e_mean_vs_fcfs"] == pytest.approx(0.5)
    assert rows[("fcfs", True)]["front_end_scored"] is None and rows[("pars", True)]["front_end_scored"] == 2
    assert rows[("pars", False)]["loadavg_before"] == (2.0, 2.0, 2.0)
    settings = settings_dict(ServerSettings("m", "ckpt"), result, "gpt", 1.0, 0, "2026-01-01 00:00:00")
    write_outputs(tmp_path, settings, result)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["runs"]) == 4 and summary["settings"]["server"]["stream_interval"] == 8
    assert "| pars | yes |" in markdown(settings, result_rows(result))
    assert len((tmp_path / "requests.jsonl").read_text().splitlines()) == 8


# A stand-in server that, like vLLM's API server, starts a child process (its "engine core"); the test kills the
# server itself, as a crash would, to check that the child does not outlive the block.
SERVER_WITH_A_CHILD = """
import http.server, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[2], "w").write(str(child.pid))
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


def test_a_server_and_its_children_are_stopped_even_after_the_server_was_killed(tmp_path):
    import os
    import sys
    import time

    from pars.bench.http import free_port, running_process

    port, pid_file = free_port(), tmp_path / "child.pid"
    command = [sys.executable, "-c", SERVER_WITH_A_CHILD, str(port), str(pid_file)]
    with running_process(command, dict(os.environ), f"http://127.0.0.1:{port}", tmp_path / "server.log",
                         start_timeout_s=30) as server:
        server.kill()  # the server dies; its child is left running
        server.wait(timeout=10)
        child = int(pid_file.read_text())
        os.kill(child, 0)  # still alive here
    deadline = time.monotonic() + 10
    while True:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "the server's child outlived running_process"
        time.sleep(0.1)
