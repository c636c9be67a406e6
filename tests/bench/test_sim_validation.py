"""Replaying a served run in the simulator: the pure parts, and the CLI's one-line errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pars.bench.sim_validation import ValidationError, engine_config, load_runs, rank_agreement
from pars.cli import app

runner = CliRunner()


def test_rankings_agree_only_when_real_and_simulated_means_order_the_policies_alike():
    rows = [{"repeat": 0, "workload": "burst", "policy": p, "real_mean_s": r, "sim_mean_s": s}
            for p, r, s in (("fcfs", 3.0, 2.0), ("oracle", 1.0, 0.5), ("pars", 2.0, 1.0))]
    rows += [{"repeat": 0, "workload": "poisson 1.00/s", "policy": p, "real_mean_s": r, "sim_mean_s": s}
             for p, r, s in (("fcfs", 1.0, 1.0), ("pars", 2.0, 0.5))]
    by_workload = {r["workload"]: r for r in rank_agreement(rows)}
    assert by_workload["burst"]["agree"] and by_workload["burst"]["real_order"] == ["oracle", "pars", "fcfs"]
    assert not by_workload["poisson 1.00/s"]["agree"]
    assert by_workload["poisson 1.00/s"]["sim_order"] == ["pars", "fcfs"]


def test_kv_blocks_come_from_the_cache_size_at_two_bytes_an_element(tmp_path):
    # the tiny model's shape: vLLM's CPU backend logs 1,048,576 KV tokens for it at 1 GiB
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 128, "num_attention_heads": 2, "head_dim": 64,
                                                      "num_key_value_heads": 2, "num_hidden_layers": 2}))
    config = engine_config({"engine": {"model": str(tmp_path), "kv_cache_gib": 1, "max_num_seqs": 4,
                                       "max_model_len": 4096}})
    assert config.num_kv_blocks * config.block_size == 1_048_576
    assert (config.max_num_seqs, config.max_num_batched_tokens) == (4, 4096)


def test_a_request_file_that_is_not_a_serve_record_is_named_with_its_line(tmp_path):
    path = tmp_path / "requests.jsonl"
    path.write_text(json.dumps({"policy": "fcfs", "repeat": 0, "arrival": "burst", "rate": None, "index": 0}) + "\n{}\n")
    with pytest.raises(ValidationError, match=r"requests.jsonl:2: not a `pars bench serve` request record"):
        load_runs(path)
    with pytest.raises(ValidationError, match="no such file"):
        load_runs(tmp_path / "missing.jsonl")


@pytest.mark.parametrize("args, message", [
    (["--policies", "pars,oracle"], "must include fcfs"),
    (["--study", "nope", "--policies", "fcfs"], "unknown study"),
    (["--profile", "no-such-profile", "--policies", "fcfs"], "no step profile named 'no-such-profile'"),
    (["--trace", "nope", "--policies", "fcfs"], "unknown trace"),
    (["--validate", "--profile", "no-such-profile"], "no step profile named 'no-such-profile'"),
    (["--validate", "--requests-file", "nowhere/requests.jsonl"], "summary.json: no such file"),
])
def test_bench_sim_fails_in_one_line(tmp_path, args, message):
    result = runner.invoke(app, ["bench", "sim", *args, "--out", str(tmp_path / "sim")])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
