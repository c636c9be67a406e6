"""The `pars` command end to end on a small real data set, with the real encoder."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from pars.cli import app
from pars.predictor.training import CONTINUATION_LR, TrainSettings

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
    config = json.loads((out / "pars_config.json").read_text())
    assert config["training"]["loss"] == "margin"
    assert config["training"]["threshold"] == 0.2
    assert config["training"]["split"]["seed"] == 0
    assert len(config["training"]["data_fingerprint"]) == 16
    assert config["training"]["head_epochs"] == 60
    assert config["training"]["lr"] == TrainSettings.lr != CONTINUATION_LR
    quantiles = config["score_quantiles"]  # what pars score-server ranks a score against
    assert len(quantiles) == 101 and quantiles == sorted(quantiles) and quantiles[0] < quantiles[-1]
    stages = [(h["stage"], h["epoch"]) for h in config["training"]["result"]["history"]]
    assert stages == [("linear_probe", e) for e in range(1, 61)] + [("fine_tune", 1)]
    assert (config["training"]["result"]["best_stage"], config["training"]["result"]["best_epoch"]) in stages
    assert "best epoch" in result.output


def test_train_refuses_a_frozen_encoder_with_no_head_epochs(tmp_path):
    result = runner.invoke(app, ["train", "--freeze-encoder", "--head-epochs", "0", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "nothing to train" in result.output


def test_eval_json_prints_one_valid_json_object(trained, small_jsonl):
    out, _ = trained
    result = runner.invoke(app, ["eval", "--predictor", str(out), "--data", str(small_jsonl), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 64
    assert -1 <= report["kendall_tau"] <= 1
    assert set(report) >= {"kendall_tau", "spearman", "pairwise_accuracy", "n", "per_model"}
    assert report["per_model"]["gpt4_1106_preview"]["n"] == 64


def test_eval_bootstrap_adds_intervals_of_the_source_and_balanced_tau(trained, small_jsonl):
    out, _ = trained
    result = runner.invoke(app, ["eval", "--predictor", str(out), "--data", str(small_jsonl), "--json", "--bootstrap", "30"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["tau_intervals"]) == {*report["per_source"], "balanced"}
    for low, high in report["tau_intervals"].values():
        assert -1 <= low <= high <= 1 and high - low > 0.01
    table = runner.invoke(app, ["eval", "--predictor", str(out), "--data", str(small_jsonl), "--bootstrap", "30"])
    assert "95 % interval" in table.output and " - " in table.output


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


# Bad input at the edge: every expected error is one `error:` line (or typer's usage error) and exit code 2.

@pytest.fixture(scope="module")
def untrained_checkpoint(tmp_path_factory):
    """A real MiniLM encoder with a random head: real, deterministic scores without training."""
    from pars.predictor import Predictor

    return Predictor.untrained(seed=0).save(tmp_path_factory.mktemp("untrained") / "predictor")


@pytest.fixture(scope="module")
def corrupt_checkpoint(tmp_path_factory, untrained_checkpoint):
    """Every file present, the weights garbage."""
    broken = tmp_path_factory.mktemp("corrupt") / "predictor"
    broken.mkdir()
    for item in untrained_checkpoint.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    return broken


def assert_one_error_line(result, *expected: str) -> None:
    """Exit code 2, no traceback, and the error on one line that names what is wrong."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for text in expected:
        assert text in errors[0], result.output


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real `pars` command in its own process (for `serve`, which replaces its process with vLLM's)."""
    return subprocess.run([sys.executable, "-m", "pars.cli", *args], capture_output=True, text=True, timeout=timeout)


def scores_of(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


@pytest.mark.parametrize("batch_size", ["0", "-1"])
def test_score_batch_size_below_one_is_a_usage_error(untrained_checkpoint, batch_size):
    result = runner.invoke(app, ["score", "--predictor", str(untrained_checkpoint), "--batch-size", batch_size, "hi"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "Invalid value" in result.output and result.stdout == ""


def test_score_prints_one_line_per_stdin_line_with_nan_for_blank_lines(untrained_checkpoint):
    ckpt = str(untrained_checkpoint)
    expected = scores_of(runner.invoke(app, ["score", "--predictor", ckpt, "Hi there", "Write a novel"]))
    lines = scores_of(runner.invoke(app, ["score", "--predictor", ckpt], input="Hi there\n\n   \r\nWrite a novel\n"))
    assert lines == [expected[0], "nan", "nan", expected[1]]
    assert scores_of(runner.invoke(app, ["score", "--predictor", ckpt, "", "Hi there"])) == ["nan", expected[0]]


def test_score_drops_a_bom_and_scores_non_utf8_lines_with_replacement_characters(untrained_checkpoint):
    ckpt = str(untrained_checkpoint)
    expected = scores_of(runner.invoke(app, ["score", "--predictor", ckpt, "Hi there", "caf\ufffd au lait"]))
    result = runner.invoke(app, ["score", "--predictor", ckpt], input=b"\xef\xbb\xbfHi there\ncaf\xe9 au lait\n")
    assert scores_of(result) == expected
    assert "1 line(s) were not valid UTF-8" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--batch-size", "0"], "Invalid value"),
    (["--batch-size", "1"], "Invalid value"),  # pairwise losses need two prompts a batch
    (["--epochs", "-1"], "Invalid value"),
    (["--epochs", "0", "--head-epochs", "0"], "nothing to train"),
    (["--max-length", "513"], "at most 512"),
    (["--max-length", "1"], "Invalid value"),
    (["--pooling", "max"], "pooling"),
    (["--truncation", "middle"], "--truncation 'middle': choose one of head, head-tail"),
    (["--encoder", "/no/such/encoder"], "never downloaded"),
])
def test_train_rejects_bad_options_before_any_work(tmp_path, small_jsonl, args, message):
    result = runner.invoke(app, ["train", "--data", str(small_jsonl), "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert message in result.output
    assert "validation pair accuracy" not in result.output and not (tmp_path / "x").exists()


@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_train_out_on_an_existing_file_fails_before_training(tmp_path, small_jsonl, where):
    blocker = tmp_path / "taken"
    blocker.write_text("keep me")
    out = blocker if where == "file" else blocker / "predictor"
    result = runner.invoke(app, ["train", "--data", str(small_jsonl), "--out", str(out)])
    assert_one_error_line(result, str(blocker), "is a file")
    assert "best epoch" not in result.output and blocker.read_text() == "keep me"


@pytest.mark.parametrize("content", [b"\xef\xbb\xbf", b""], ids=["bom", "no-bom"])
def test_a_jsonl_file_with_a_byte_order_mark_is_read_by_train_and_eval(tmp_path, small_jsonl, untrained_checkpoint,
                                                                      content):
    data = tmp_path / "data.jsonl"
    data.write_bytes(content + small_jsonl.read_bytes())
    result = runner.invoke(app, ["eval", "--predictor", str(untrained_checkpoint), "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n"] == 64


def test_a_corrupt_gz_data_file_is_one_error_line(tmp_path, untrained_checkpoint):
    data = tmp_path / "rows.jsonl.gz"
    data.write_bytes(b"not gzip at all")
    assert_one_error_line(runner.invoke(app, ["eval", "--predictor", str(untrained_checkpoint), "--data", str(data)]),
                          "rows.jsonl.gz", "not a readable gzip file")
    assert_one_error_line(runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "x")]),
                          "rows.jsonl.gz", "not a readable gzip file")


def test_response_tokens_beyond_64_bits_is_one_error_line_naming_file_and_line(tmp_path, small_jsonl):
    data = tmp_path / "huge.jsonl"
    data.write_text(small_jsonl.read_text() + '{"prompt": "a", "response_tokens": 9223372036854775808}\n')
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "x")])
    assert_one_error_line(result, "huge.jsonl:65", "too large")


@pytest.mark.parametrize("threshold", ["-0.1", "1.5"])
def test_eval_threshold_outside_zero_to_one_is_a_usage_error(untrained_checkpoint, threshold):
    result = runner.invoke(app, ["eval", "--predictor", str(untrained_checkpoint), "--threshold", threshold])
    assert result.exit_code == 2 and "Invalid value" in result.output


CHECKPOINT_COMMANDS = {
    "score": ["score", "hello"],
    "eval": ["eval"],
    "bench overhead": ["bench", "overhead"],
    "bench http": ["bench", "http"],
    "bench serve": ["bench", "serve", "--policies", "pars"],
}


@pytest.mark.parametrize("command", CHECKPOINT_COMMANDS)
@pytest.mark.parametrize("state", ["missing", "corrupt"])
def test_a_missing_or_corrupt_checkpoint_is_one_error_line_for_every_command(tmp_path, corrupt_checkpoint, command,
                                                                            state):
    directory = tmp_path / "none" if state == "missing" else corrupt_checkpoint
    args = [*CHECKPOINT_COMMANDS[command], "--predictor", str(directory), "--out", str(tmp_path / "out")]
    if command in ("score", "eval"):
        args.remove("--out")
        args.remove(str(tmp_path / "out"))
    result = runner.invoke(app, args)
    assert_one_error_line(result, str(directory), "pars train")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("state", ["missing", "corrupt"])
def test_serve_with_a_missing_or_corrupt_checkpoint_is_one_error_line(tmp_path, corrupt_checkpoint, state):
    directory = tmp_path / "none" if state == "missing" else corrupt_checkpoint
    result = run_cli("serve", "model-dir", "--predictor", str(directory))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and str(directory) in result.stderr


def test_serve_refuses_a_predictor_given_twice_differently(tmp_path, untrained_checkpoint):
    config = json.dumps({"pars": {"predictor": str(tmp_path / "other")}})
    result = run_cli("serve", "model-dir", "--predictor", str(untrained_checkpoint), "--additional-config", config)
    assert result.returncode == 2, result.stderr
    assert "disagree" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("serve", "model-dir", "--additional-config", config)  # the additional-config one is checked
    assert result.returncode == 2 and f"no predictor checkpoint at {tmp_path / 'other'}" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--learn-store", "bogus"], "--learn-store 'bogus'"),
    (["--policy", "fcfs"], "use a policy that scores with a predictor"),
    ([], "refits a distilled student"),  # the checkpoint is a teacher with no student inside
])
def test_serve_learn_that_cannot_learn_is_one_error_line(tmp_path, untrained_checkpoint, args, message):
    result = run_cli("serve", "model-dir", "--predictor", str(untrained_checkpoint), "--learn",
                     str(tmp_path / "learn"), *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "learn" / "current").exists()


def test_serve_on_an_unsupported_vllm_stops_with_one_line_before_loading_anything(monkeypatch, tmp_path):
    # the fault is injected on purpose: this machine has a supported vLLM, so its version is faked
    monkeypatch.setattr("pars.integrations.vllm.versions.installed_vllm", lambda: ("vllm", "0.35.0"))
    result = runner.invoke(app, ["serve", "model-dir", "--predictor", str(tmp_path / "absent")])
    assert_one_error_line(result, "vllm 0.35.0 is not supported", "0.30.x to 0.34.x")


def test_bench_rank_with_a_missing_data_file_is_one_error_line(tmp_path):
    result = runner.invoke(app, ["bench", "rank", "--data", str(tmp_path / "absent.jsonl"),
                                 "--out", str(tmp_path / "r")])
    assert_one_error_line(result, "absent.jsonl", "no such file")


@pytest.mark.parametrize("command", [["make-tiny-model"], ["bench", "rank", "--out"], ["bench", "serve", "--out"],
                                     ["bench", "http", "--out"]], ids=" ".join)
def test_an_output_directory_that_is_a_file_fails_before_any_work(tmp_path, untrained_checkpoint, command):
    blocker = tmp_path / "taken"
    blocker.write_text("keep me")
    extra = ["--predictor", str(untrained_checkpoint)] if command[1:2] in (["serve"], ["http"]) else []
    assert_one_error_line(runner.invoke(app, [*command, str(blocker), *extra]), str(blocker), "is a file")
    assert blocker.read_text() == "keep me"


def test_bench_overhead_out_must_be_a_file_path_and_counts_at_least_one(tmp_path, untrained_checkpoint):
    ckpt = ["--predictor", str(untrained_checkpoint)]
    assert_one_error_line(runner.invoke(app, ["bench", "overhead", *ckpt, "--out", str(tmp_path)]), "is a directory")
    for option in ("--prompts", "--threads", "--passes"):
        result = runner.invoke(app, ["bench", "overhead", *ckpt, option, "0"])
        assert result.exit_code == 2 and "Invalid value" in result.output


@pytest.mark.parametrize("command", [["bench", "serve", "--policies", "fcfs"], ["bench", "http"]], ids=" ".join)
def test_a_given_model_dir_without_a_model_is_an_error_not_a_place_to_build_one(tmp_path, untrained_checkpoint,
                                                                                command):
    empty = tmp_path / "my-model"
    empty.mkdir()
    result = runner.invoke(app, [*command, "--model", str(empty), "--predictor", str(untrained_checkpoint),
                                 "--out", str(tmp_path / "out")])
    assert_one_error_line(result, str(empty), "config.json")
    assert list(empty.iterdir()) == []


@pytest.mark.parametrize(("command", "option", "value"), [
    (["bench", "serve"], "--requests", "0"), (["bench", "serve"], "--repeats", "0"),
    (["bench", "serve"], "--max-num-seqs", "0"), (["bench", "serve"], "--burst", "-1"),
    (["bench", "serve"], "--length-scale", "0"), (["bench", "serve"], "--duration", "0"),
    (["bench", "serve"], "--max-wait-s", "0"), (["bench", "serve"], "--aging-rate", "-1"),
    (["bench", "http"], "--requests", "0"), (["bench", "http"], "--length-scale", "-1"),
    (["bench", "http"], "--stream-interval", "0"), (["bench", "http"], "--port", "70000"),
    (["serve", "model-dir"], "--port", "0"), (["serve", "model-dir"], "--max-num-seqs", "0"),
    (["bench", "serve"], "--trace", "bogus"),  # else found only after the burst run
])
def test_options_out_of_range_fail_before_any_work(tmp_path, command, option, value):
    result = runner.invoke(app, [*command, option, value, "--predictor", str(tmp_path / "none")])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert option in result.output and "Traceback" not in result.output


def test_eval_without_data_reads_the_bundled_test_prompts_of_the_checkpoints_split(untrained_checkpoint):
    from pars.data import PromptSplit
    from pars.jobs import bundled_records

    result = runner.invoke(app, ["eval", "--predictor", str(untrained_checkpoint), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    test_prompts = PromptSplit(seed=0).partition(bundled_records())["test"]  # the open models' rows too
    assert report["n"] == len(test_prompts) > 30_000 and "open" in report["per_source"]
    assert len(report["per_model"]) > 200 and -1 <= report["kendall_tau"] <= 1


def test_train_init_from_continues_a_checkpoint_on_new_data_and_records_its_lineage(tmp_path, small_jsonl,
                                                                                     untrained_checkpoint):
    import torch

    from pars.predictor import Predictor

    first, second = tmp_path / "first", tmp_path / "second"
    for parent, out in ((untrained_checkpoint, first), (first, second)):
        result = runner.invoke(app, ["train", "--init-from", str(parent), "--data", str(small_jsonl), "--freeze-encoder",
                                     "--head-epochs", "3", "--out", str(out)])
        assert result.exit_code == 0, result.output
    start, continued = (Predictor.load(d, precision="fp32").ranker for d in (untrained_checkpoint, first))
    for (name, before), after in zip(start.encoder.state_dict().items(), continued.encoder.state_dict().values()):
        assert torch.equal(before, after), f"head-only continuation moved the encoder ({name})"
    assert not torch.equal(start.head.weight, continued.head.weight), "the head did not learn from the new data"
    training = json.loads((second / "pars_config.json").read_text())["training"]
    assert training["lr"] == CONTINUATION_LR  # a fine-tuned encoder continues at the gentler rate
    lineage = training["init_from"]
    assert lineage["path"] == str(first.resolve()) and lineage["data"] == str(small_jsonl)
    assert lineage["parent"]["path"] == str(untrained_checkpoint.resolve()) and lineage["parent"]["parent"] is None


@pytest.mark.parametrize("extra, message", [(["--loss", "pointwise"], "continue it with --loss margin"),
                                            (["--pooling", "cls"], "keeps the encoder, pooling, max length"),
                                            (["--max-length", "64"], "keeps the encoder, pooling, max length"),
                                            (["--truncation", "head-tail"], "truncation and length feature of"),
                                            (["--no-length-feature"], "truncation and length feature of")])
def test_train_init_from_refuses_another_loss_or_architecture(tmp_path, small_jsonl, untrained_checkpoint, extra, message):
    result = runner.invoke(app, ["train", "--init-from", str(untrained_checkpoint), "--data", str(small_jsonl),
                                 "--freeze-encoder", "--head-epochs", "1", "--out", str(tmp_path / "x"), *extra])
    assert result.exit_code == 2 and message in result.output, result.output


def test_train_head_tail_checkpoint_scores_what_a_long_prompt_asks_at_its_end(tmp_path, small_jsonl, trained):
    out = tmp_path / "head-tail"
    result = runner.invoke(app, ["train", "--data", str(small_jsonl), "--out", str(out), "--truncation", "head-tail",
                                 "--freeze-encoder", "--head-epochs", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "pars_config.json").read_text())["truncation"] == "head-tail"
    assert json.loads((trained[0] / "pars_config.json").read_text())["truncation"] == "head"
    paste = "The minutes of the meeting follow. " * 60
    asks = [paste + "Reply yes or no now.", paste + "Write a long essay!!"]  # equal lengths: the length feature agrees
    assert len(asks[0]) == len(asks[1])

    def scores(ckpt):
        return [float(line) for line in runner.invoke(app, ["score", "--predictor", str(ckpt), *asks]).stdout.split()]

    assert scores(trained[0])[0] == scores(trained[0])[1]
    assert scores(out)[0] != scores(out)[1]


def test_distill_writes_a_student_that_eval_and_score_open(tmp_path, untrained_checkpoint):
    out = tmp_path / "student"
    result = runner.invoke(app, ["distill", "--teacher", str(untrained_checkpoint), "--out", str(out),
                                 "--max-prompts", "200", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "pars_config.json").read_text())["kind"] == "static"
    scored = runner.invoke(app, ["score", "--predictor", str(out), "hello", "write a long essay"])
    assert scored.exit_code == 0 and len(scored.stdout.split()) == 2, scored.output
    assert runner.invoke(app, ["eval", "--predictor", str(out), "--json"]).exit_code == 0


def test_distill_from_a_missing_teacher_or_with_a_missing_prompt_file_is_one_error_line(tmp_path, untrained_checkpoint):
    missing = tmp_path / "none"
    assert_one_error_line(runner.invoke(app, ["distill", "--teacher", str(missing)]), str(missing), "pars train")
    result = runner.invoke(app, ["distill", "--teacher", str(untrained_checkpoint), "--out", str(tmp_path / "s"),
                                 "--prompts", str(tmp_path / "absent.jsonl")])
    assert_one_error_line(result, "absent.jsonl", "no such file")
