"""The ranking benchmark: its grid, the shared embedding cache, seed statistics, and `pars bench rank` end to end."""

import hashlib
import json
from dataclasses import asdict

import numpy as np
import pytest
from typer.testing import CliRunner

from pars.bench.ranking import (CROSS_MODELS, LATER_FIELDS, LPFT_CHANGES, LPFT_ROW, PARS_RECIPE, RunOutcome, RunSpec,
                                build_plan, load_bench_data, train_run)
from pars.bench.ranking_report import row_stats, seed_gaps
from pars.cli import app
from pars.data import load_bundled
from pars.jobs import TrainJob
from pars.paths import bundled_data_dir
from pars.predictor import Predictor
from pars.predictor.embeddings import EmbeddingCache
from pars.predictor.training import BATCHINGS, TrainSettings

LOSS_NAMES = {"margin", "listmle", "pointwise", "classify"}
TINY_MODELS = [*CROSS_MODELS, "vicuna-13b-v1.5-togetherai", "higgs-llama-3-70b-v2"]


def test_quick_plan_is_frozen_single_seed_and_covers_every_loss():
    plan = build_plan(quick=True, available_models=set(CROSS_MODELS))
    assert all(e.spec.freeze_encoder and e.spec.seed == 0 for e in plan)
    assert {e.row for e in plan if e.table == "main"} == LOSS_NAMES
    assert not any(e.spec.max_length == 256 for e in plan)
    assert {e.row for e in plan if e.table == "cross_model"} == {"generalist (frozen)", *CROSS_MODELS}


def test_full_plan_compares_every_loss_over_three_seeds_with_pars_trains_recipe_and_frozen():
    plan = build_plan(quick=False, available_models={"gpt4_1106_preview"})
    for table, frozen in (("main", False), ("frozen", True)):
        runs = [e.spec for e in plan if e.table == table]
        assert len(runs) == 12 and all(spec.freeze_encoder == frozen for spec in runs)
        assert {(spec.loss, spec.seed) for spec in runs} == {(loss, s) for loss in LOSS_NAMES for s in (0, 1, 2)}
    main = [e.spec for e in plan if e.table == "main"]
    recipe, job = TrainSettings(), TrainJob()  # what `pars train` does by default
    assert all((spec.head_epochs, spec.epochs, spec.batching, spec.length_feature, spec.lr)
               == (recipe.head_epochs, recipe.epochs, recipe.batching, job.length_feature, recipe.lr) for spec in main)
    assert [(e.table, e.spec.loss, e.spec.seed) for e in plan[:4]] == [
        ("main", "margin", 0), ("main", "listmle", 0), ("main", "pointwise", 0), ("main", "classify", 0)]
    assert any(spec.max_length == 256 for spec in (e.spec for e in plan))
    assert {e.spec.seed for e in plan if e.table == "cross_model"} == {0}
    assert {e.spec.seed for e in plan if e.table == "ablation" and e.spec.freeze_encoder} == {0}
    lpft = [e for e in plan if e.table == "ablation" and not e.spec.freeze_encoder]
    assert {(e.row, e.spec.seed) for e in lpft} == {(row, s) for row in LPFT_CHANGES for s in (0, 1, 2)}
    for entry in lpft:  # each row changes one setting of pars train's recipe, or none
        changed = {k for k, v in asdict(entry.spec).items() if v != asdict(PARS_RECIPE)[k]} - {"seed"}
        assert changed == set(LPFT_CHANGES[entry.row])
    assert {e.spec for e in plan if e.row == LPFT_ROW} == {spec for spec in main if spec.loss == "margin"}
    trained_on = {e.spec.train_model for e in plan if e.table == "cross_model"}
    assert trained_on == {None, "gpt4_1106_preview"}  # models absent from the data are skipped


def test_run_key_changes_with_every_setting():
    base = RunSpec()
    variants = [RunSpec(loss="listmle"), RunSpec(seed=1), RunSpec(threshold=0.0), RunSpec(margin=2.0),
                RunSpec(max_length=256), RunSpec(label_mode="per-model"), RunSpec(train_model="x"),
                RunSpec(freeze_encoder=False), RunSpec(head_epochs=5), RunSpec(length_feature=not base.length_feature),
                RunSpec(batching=next(b for b in BATCHINGS if b != base.batching)),
                RunSpec(freeze_encoder=False, lr=base.lr / 5)]
    assert len({base.key, *(v.key for v in variants)}) == len(variants) + 1


def test_a_frozen_runs_key_ignores_the_encoders_learning_rate_and_a_fine_tuned_runs_does_not():
    assert RunSpec(lr=1e-3).key == RunSpec(lr=1e-5).key
    assert RunSpec(freeze_encoder=False, lr=1e-3).key != RunSpec(freeze_encoder=False, lr=1e-5).key
    assert RunSpec(freeze_encoder=False, lr=3e-5).settings().lr == 3e-5


@pytest.mark.parametrize("freeze_encoder", [True, False])
def test_fields_added_later_keep_the_keys_of_runs_cached_before_them(freeze_encoder):
    older = RunSpec(freeze_encoder=freeze_encoder, **LATER_FIELDS)  # their values before they existed
    fields = {k: v for k, v in asdict(older).items() if k not in LATER_FIELDS}  # the spec as it was before them
    assert older.key.endswith(hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8])


def test_row_stats_are_mean_and_sample_std_over_seeds():
    runs = [{"kendall_tau": 0.2, "balanced_kendall_tau": 0.1, "pairwise_accuracy": 0.6, "spearman": 0.3,
             "noise_pair_tau": 0.1, "per_source": {"s": 0.2}},
            {"kendall_tau": 0.4, "balanced_kendall_tau": 0.3, "pairwise_accuracy": 0.8, "spearman": 0.5,
             "noise_pair_tau": float("nan"), "per_source": {"s": 0.4}}]
    outcomes = [RunOutcome(RunSpec(seed=s), [], 10.0 * (s + 1), 1) for s in (0, 1)]
    stats = row_stats(runs, outcomes)
    assert stats["kendall_tau_mean"] == pytest.approx(0.3)
    assert stats["kendall_tau_std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert stats["balanced_kendall_tau_mean"] == pytest.approx(0.2)
    assert stats["pairwise_accuracy_mean"] == pytest.approx(0.7)
    assert stats["noise_pair_tau_mean"] == pytest.approx(0.1)  # NaN seeds are left out
    assert stats["seeds"] == 2 and stats["train_seconds_mean"] == 15.0
    assert stats["balanced_kendall_tau_by_seed"] == {0: 0.1, 1: 0.3}


def test_seed_gaps_pair_the_same_seeds_and_count_wins():
    margin = {"balanced_kendall_tau_by_seed": {0: 0.30, 1: 0.20, 2: 0.31}}
    listmle = {"balanced_kendall_tau_by_seed": {0: 0.25, 1: 0.25}}  # seed 2 not run: left out of the pairing
    assert seed_gaps(margin, listmle) == "+0.050, -0.050 (ahead on 1 of 2)"


@pytest.fixture(scope="module")
def tiny_jsonl(tmp_path_factory):
    """80 AlpacaEval prompts with real lengths of the cross-model models and both vicuna runs."""
    records = load_bundled(bundled_data_dir(), models=TINY_MODELS)
    keep = set(sorted({r.prompt_id for r in records if r.source == "alpaca_eval"})[:80])
    path = tmp_path_factory.mktemp("rank") / "tiny.jsonl"
    with path.open("w") as f:
        for r in records:
            if r.prompt_id in keep:
                f.write(json.dumps({"prompt": r.prompt, "response_tokens": r.response_tokens, "model": r.model,
                                    "source": r.source}) + "\n")
    return path


def test_a_frozen_run_saves_a_whole_checkpoint_that_scores_like_the_run(tiny_jsonl, tmp_path):
    data = load_bench_data(str(tiny_jsonl))
    outcome = train_run(RunSpec(loss="pointwise", head_epochs=2), data, EmbeddingCache(), tmp_path / "checkpoint")
    loaded = Predictor.load(tmp_path / "checkpoint", precision="fp32")  # bit-stable, like the run
    np.testing.assert_allclose(loaded.score(data.test_prompts), outcome.scores, atol=1e-4)
    assert loaded.config.training["loss"] == "pointwise"


def test_frozen_runs_share_the_injected_embedding_cache(tiny_jsonl, monkeypatch):
    data = load_bench_data(str(tiny_jsonl))
    embeddings = EmbeddingCache()
    first = train_run(RunSpec(head_epochs=1), data, embeddings)
    filled = len(embeddings)

    def no_encoding(*args, **kwargs):
        raise AssertionError("the second run encoded prompts the first one had cached")

    monkeypatch.setattr(Predictor, "embed", no_encoding)
    second = train_run(RunSpec(head_epochs=1, seed=1, train_model="gpt4_1106_preview"), data, embeddings)
    assert len(embeddings) == filled
    assert len(second.scores) == len(first.scores) == len(data.test_prompts)


def test_bench_rank_quick_end_to_end_writes_tables_json_and_plots(tiny_jsonl, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["bench", "rank", "--quick", "--data", str(tiny_jsonl), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["methods"]) == LOSS_NAMES
    for stats in summary["methods"].values():
        assert -1 <= stats["kendall_tau_mean"] <= 1 and 0 <= stats["pairwise_accuracy_mean"] <= 1
        assert stats["kendall_tau_std"] == 0.0 and stats["seeds"] == 1
    assert set(summary["references"]) == {"prompt_length", "crowd_median", "noise_ceiling"}
    assert set(summary["cross_model"]) == {"generalist (frozen)", *CROSS_MODELS}
    assert set(summary["cross_model"]["gpt4_1106_preview"]) >= set(CROSS_MODELS)
    assert "| margin |" in (tmp_path / "summary.md").read_text()
    for plot in ("tau_by_method.png", "cross_model.png", "ablations.png"):
        assert (tmp_path / plot).stat().st_size > 1000

    low, high = summary["settings"]["load_average_range"]
    assert 0 <= low <= high
    runs = list((tmp_path / "runs").glob("*.json"))
    for run in runs:  # as cached before the benchmark recorded load averages
        saved = json.loads(run.read_text())
        assert len(saved.pop("load_average")) == 2
        run.write_text(json.dumps(saved))

    again = runner.invoke(app, ["bench", "rank", "--quick", "--data", str(tiny_jsonl), "--out", str(tmp_path),
                                "--report-only"])
    assert again.exit_code == 0, again.output
    rebuilt = json.loads((tmp_path / "summary.json").read_text())
    assert rebuilt["methods"] == summary["methods"]
    assert rebuilt["settings"]["load_average_range"] is None
