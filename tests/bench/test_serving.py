"""A tiny end-to-end serving benchmark through the CLI: real vLLM engines on the tiny model, three policies."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr
from typer.testing import CliRunner

import vllm  # noqa: F401 - a declared dependency: a broken install fails here instead of skipping

from pars.cli import app

BURST, POISSON = 24, 18


@pytest.fixture(scope="module")
def bench_out(tmp_path_factory: pytest.TempPathFactory):
    """One run on a user's own traffic file (--data): fcfs, oracle and pars (front-end scored, real MiniLM
    with a random head), a burst of 24 and 18 Poisson arrivals at 20 req/s, short responses."""
    from pars.integrations.vllm import make_tiny_model
    from pars.predictor import Predictor

    model = make_tiny_model(tmp_path_factory.mktemp("tiny-model"))
    predictor = Predictor.untrained(seed=0).save(tmp_path_factory.mktemp("predictor"))
    traffic = tmp_path_factory.mktemp("traffic") / "my_traffic.jsonl"
    rng = np.random.default_rng(0)
    traffic.write_text("".join(json.dumps({"prompt": f"question {i}: " + "tell me more " * int(rng.integers(1, 20)),
                                           "response_tokens": int(rng.integers(10, 300)), "model": "my-llm"}) + "\n"
                               for i in range(30)))
    out = tmp_path_factory.mktemp("serving")
    result = CliRunner().invoke(app, [
        "bench", "serve", "--policies", "fcfs,oracle,pars", "--predictor", str(predictor), "--data", str(traffic),
        "--burst", str(BURST), "--rates", "20", "--requests", str(POISSON), "--length-scale", "0.1",
        "--fcfs-wait-factor", "inf",  # the order test below checks pure shortest-first, without the bound
        "--model", str(model), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def requests_of(out) -> list[dict]:
    return [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]


def test_every_request_finished_with_exactly_its_length(bench_out):
    rows = requests_of(bench_out)
    assert len(rows) == 3 * (BURST + POISSON)
    for policy in ("fcfs", "oracle", "pars"):
        for arrival, n in (("burst", BURST), ("poisson", POISSON)):
            mine = [r for r in rows if r["policy"] == policy and r["arrival"] == arrival]
            assert sorted(r["index"] for r in mine) == list(range(n))
            for r in mine:
                assert r["output_tokens"] == max(1, int(np.ceil(r["true_tokens"] * 0.1)))
                assert r["arrival_s"] <= r["first_token_s"] <= r["finish_s"]


def test_summary_files_are_written_with_the_documented_fields(bench_out):
    summary = json.loads((bench_out / "summary.json").read_text())
    assert summary["settings"]["plan"]["length_scale"] == 0.1
    assert summary["settings"]["engine"]["max_num_seqs"] == 4 and summary["settings"]["engine"]["fcfs_wait_factor"] == "inf"
    assert summary["settings"]["target_model"] == "my-llm" and "my_traffic.jsonl" in summary["settings"]["prompts"]
    assert all(p["loadavg_before"] and p["loadavg_after"] for p in summary["settings"]["policies"])
    runs = summary["runs"]
    policies = ("fcfs", "oracle", "pars")
    assert {(r["policy"], r["arrival"]) for r in runs} == {(p, a) for p in policies for a in ("burst", "poisson")}
    for run in runs:
        assert run["n"] == (BURST if run["arrival"] == "burst" else POISSON)
        assert run["rate"] == (None if run["arrival"] == "burst" else 20.0)
        assert 0 < run["p50_e2e_s"] <= run["p90_e2e_s"] <= run["p99_e2e_s"]
        assert run["mean_ttft_s"] <= run["mean_e2e_s"] and run["throughput_rps"] > 0 and run["throughput_tok_s"] > 0
        assert run["mean_e2e_vs_fcfs"] > 0 and run["p99_e2e_vs_fcfs"] > 0
        if run["policy"] == "fcfs":
            assert run["mean_e2e_vs_fcfs"] == pytest.approx(1.0)
    markdown = (bench_out / "summary.md").read_text()
    assert "length scale 0.1" in markdown and "| oracle | 0 | burst |" in markdown
    for png in ("latency_vs_rate.png", "ratio_to_fcfs.png", "latency_cdf.png"):
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


def test_spread_over_repeats_gives_median_min_and_max_per_policy_and_load():
    from pars.bench.serving_report import spread_rows

    def row(repeat, ratio, rate):
        return {"policy": "pars", "repeat": repeat, "arrival": "poisson", "trace": None, "load": 1.1, "n": 300,
                "rate": rate, "mean_e2e_vs_fcfs": ratio, "p99_e2e_vs_fcfs": 1.0, "captured_of_oracle": float("nan"),
                "throughput_vs_fcfs": 1.0}

    (spread,) = spread_rows([row(0, 0.6, 9.0), row(1, 0.9, 9.5), row(2, 0.7, 8.8)])
    assert spread["repeats"] == 3 and spread["mean_e2e_vs_fcfs"] == {"median": 0.7, "min": 0.6, "max": 0.9}
    assert spread["captured_of_oracle"] is None


def test_a_traffic_file_with_several_models_needs_a_target_model(tmp_path):
    from pars.bench.serving import workload_pool
    from pars.data import PromptSplit

    path = tmp_path / "mixed.jsonl"
    path.write_text('{"prompt": "a", "response_tokens": 3, "model": "x"}\n{"prompt": "b", "response_tokens": 5, "model": "y"}\n')
    with pytest.raises(ValueError, match="--target-model"):
        workload_pool(path, None, PromptSplit(seed=0))
    pool, target, _ = workload_pool(path, "y", PromptSplit(seed=0))
    assert target == "y" and [(p.prompt, p.true_tokens) for p in pool] == [("b", 5)]


def test_settings_with_a_switched_off_bound_are_written_as_valid_json():
    import math

    from pars.bench.serving import BenchmarkResult, EngineSettings
    from pars.bench.serving_report import settings_dict
    from pars.bench.workload import ArrivalPlan

    settings = settings_dict(EngineSettings("model", fcfs_wait_factor=math.inf), ArrivalPlan(), "m", "prompts",
                             BenchmarkResult(), "now")
    assert json.loads(json.dumps(settings, allow_nan=False))["engine"]["fcfs_wait_factor"] == "inf"
