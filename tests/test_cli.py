"""The `pars` command end to end on a small real data set, with the real encoder."""

import json

import pytest
from typer.testing import CliRunner

from pars.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_jsonl):
    out = tmp_path_factory.mktemp("cli") / "predictor"
    result = runner.invoke(app, ["train", "--data", str(small_jsonl), "--out", str(out), "--epochs", "1",
                                 "--batch-size", "16"])
    assert result.exit_code == 0, result.output
    return out, result


def test_train_one_short_epoch_writes_a_checkpoint_with_its_settings(trained):
    out, result = trained
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["loss"] == "margin"
    assert config["training"]["threshold"] == 0.2
    assert config["training"]["split"]["seed"] == 0
    assert len(config["training"]["data_fingerprint"]) == 16
    assert config["training"]["linear_probe"] is True
    assert config["training"]["result"]["best_epoch"] in (0, 1)  # 0: the linear probe beat the fine-tuned epoch
    assert "best epoch" in result.output


def test_eval_json_prints_one_valid_json_object(trained, small_jsonl):
    out, _ = trained
    result = runner.invoke(app, ["eval", "--predictor", str(out), "--data", str(small_jsonl), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 64
    assert -1 <= report["kendall_tau"] <= 1
    assert set(report) >= {"kendall_tau", "spearman", "pairwise_accuracy", "n", "per_model"}
    assert report["per_model"]["gpt4_1106_preview"]["n"] == 64


def test_score_reads_arguments_and_stdin(trained):
    out, _ = trained
    from_args = runner.invoke(app, ["score", "--predictor", str(out), "Hi there", "Write a novel"])
    assert from_args.exit_code == 0, from_args.output
    assert len(from_args.stdout.split()) == 2
    from_stdin = runner.invoke(app, ["score", "--predictor", str(out)], input="Hi there\nWrite a novel\n")
    assert from_stdin.stdout == from_args.stdout


def test_missing_checkpoint_and_bad_data_give_clear_errors(tmp_path, trained):
    result = runner.invoke(app, ["score", "--predictor", str(tmp_path / "none"), "hello"])
    assert result.exit_code == 2
    assert "no predictor checkpoint" in result.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "response_tokens": "many"}\n')
    result = runner.invoke(app, ["train", "--data", str(bad), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "bad.jsonl:1" in result.output
