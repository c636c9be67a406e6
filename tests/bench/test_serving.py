"""A tiny end-to-end serving benchmark through the CLI: real vLLM engines on the tiny model, two policies."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr
from typer.testing import CliRunner

pytest.importorskip("vllm")

from pars.cli import app  # noqa: E402

BURST, POISSON = 12, 18


@pytest.fixture(scope="module")
def bench_out(tmp_path_factory: pytest.TempPathFactory):
    """One run: fcfs and oracle, a burst of 12 and 18 Poisson arrivals at 20 req/s, short responses."""
    from pars.integrations.vllm import make_tiny_model

    model = make_tiny_model(tmp_path_factory.mktemp("tiny-model"))
    out = tmp_path_factory.mktemp("serving")
    result = CliRunner().invoke(app, [
        "bench", "serve", "--policies", "fcfs,oracle", "--burst", str(BURST), "--rates", "20",
        "--requests", str(POISSON), "--length-scale", "0.1", "--model", str(model), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def requests_of(out) -> list[dict]:
    return [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]


def test_every_request_finished_with_exactly_its_length(bench_out):
    rows = requests_of(bench_out)
    assert len(rows) == 2 * (BURST + POISSON)
    for policy in ("fcfs", "oracle"):
        for arrival, n in (("burst", BURST), ("poisson", POISSON)):
            mine = [r for r in rows if r["policy"] == policy and r["arrival"] == arrival]
            assert sorted(r["index"] for r in mine) == list(range(n))
            for r in mine:
                assert r["output_tokens"] == max(1, int(np.ceil(r["true_tokens"] * 0.1)))
                assert r["arrival_s"] <= r["first_token_s"] <= r["finish_s"]


def test_summary_files_are_written_with_the_documented_fields(bench_out):
    summary = json.loads((bench_out / "summary.json").read_text())
    assert summary["settings"]["plan"]["length_scale"] == 0.1
    assert summary["settings"]["engine"]["max_num_seqs"] == 4
    runs = summary["runs"]
    assert {(r["policy"], r["arrival"]) for r in runs} == {(p, a) for p in ("fcfs", "oracle") for a in ("burst", "poisson")}
    for run in runs:
        assert run["n"] == (BURST if run["arrival"] == "burst" else POISSON)
        assert run["rate"] == (None if run["arrival"] == "burst" else 20.0)
        assert 0 < run["p50_e2e_s"] <= run["p90_e2e_s"] <= run["p99_e2e_s"]
        assert run["mean_ttft_s"] <= run["mean_e2e_s"] and run["throughput_rps"] > 0 and run["throughput_tok_s"] > 0
        assert run["mean_e2e_vs_fcfs"] > 0 and run["p99_e2e_vs_fcfs"] > 0
        if run["policy"] == "fcfs":
            assert run["mean_e2e_vs_fcfs"] == pytest.approx(1.0)
    markdown = (bench_out / "summary.md").read_text()
    assert "length scale 0.1" in markdown and "| oracle | burst |" in markdown
    for png in ("latency_vs_rate.png", "latency_cdf.png"):
        assert (bench_out / png).read_bytes()[:4] == b"\x89PNG"


def test_oracle_finishes_the_burst_in_length_order(bench_out):
    burst = [r for r in requests_of(bench_out) if r["policy"] == "oracle" and r["arrival"] == "burst"]
    rho = spearmanr([r["finish_s"] for r in burst], [r["output_tokens"] for r in burst]).statistic
    assert rho > 0.6, rho


def test_latency_summary_by_hand():
    from pars.bench.latency import RequestTiming, summarise

    timings = [RequestTiming(0, 0.0, 0.5, 1.0, 10, 0.25), RequestTiming(1, 1.0, 1.5, 4.0, 30, 0.75)]
    summary = summarise(timings)
    assert summary.e2e.mean == pytest.approx(2.0) and summary.ttft.mean == pytest.approx(0.5)
    assert summary.queueing.mean == pytest.approx(0.5) and summary.per_token.mean == pytest.approx((0.1 + 0.1) / 2)
    assert summary.makespan_s == 4.0 and summary.throughput_rps == 0.5 and summary.throughput_tok_s == 10.0


def test_captured_share_of_the_oracle_gain_is_undefined_when_the_oracle_gains_nothing():
    from pars.bench.latency import captured_reduction

    assert captured_reduction(10.0, 7.0, 5.0) == pytest.approx(0.6)
    assert captured_reduction(10.0, 12.0, 5.0) == pytest.approx(-0.4)
    assert np.isnan(captured_reduction(1.0, 2.0, 0.99)) and np.isnan(captured_reduction(1.0, 0.9, 1.2))
