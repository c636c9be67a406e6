"""The ranking benchmark grid: which rankers `pars bench rank` trains, training them, and their test scores.

Every run goes through the same training loop (`pars.predictor.training.train`) on the same prompt split;
a run only changes the loss or one PARS design choice. Each run's test scores are cached as JSON under
`<out>/runs/`, so an interrupted benchmark resumes and the report can be rebuilt without training.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from pars.data.labels import group_by_prompt
from pars.data.records import LengthRecord
from pars.data.splits import PromptSplit
from pars.evaluation import distinct_prompts
from pars.jobs import TrainJob, data_fingerprint, load_job_records
from pars.predictor.embeddings import EmbeddingCache
from pars.predictor.model import Predictor
from pars.predictor.training import LOSSES, TrainSettings, train

log = logging.getLogger(__name__)

CROSS_MODELS = ("gpt4_1106_preview", "Meta-Llama-3-70B-Instruct", "Mistral-7B-Instruct-v0.2", "vicuna-13b-v1.5")
SEEDS = (0, 1, 2)
FROZEN_HEAD_EPOCHS = 20  # frozen runs: validation pair accuracy levels off by about 20 head-only passes


@dataclass(frozen=True)
class RunSpec:
    """One ranker to train. Defaults: the paper's PARS settings (gap threshold 0.2, margin 1, 128 prompt
    tokens) with a generalist's consensus labels and `pars train`'s head (with the length feature), on a frozen
    MiniLM encoder (`PARS_RECIPE`: fine-tuned, as `pars train`)."""

    loss: str = "margin"
    seed: int = 0
    freeze_encoder: bool = True
    epochs: int = 1  # fine-tuning passes; unused while the encoder is frozen (kept: it is part of cached run keys)
    head_epochs: int = FROZEN_HEAD_EPOCHS  # linear-probe passes (the head alone, on cached vectors)
    threshold: float = 0.2
    margin: float = 1.0
    max_length: int = 128
    label_mode: str = "consensus"
    train_model: str | None = None  # None: a generalist trained on every model's lengths
    length_feature: bool = TrainJob.length_feature
    batching: str = TrainSettings.batching
    lr: float = TrainSettings.lr  # the encoder's: unused while it is frozen

    @property
    def key(self) -> str:
        """A file-name-safe id that changes whenever any field that matters to the run changes. Fields added
        after runs were cached (`LATER_FIELDS`) count only away from their value before they existed, so those
        runs keep their keys; a frozen run's key leaves out the encoder's learning rate."""
        fields = {name: value for name, value in asdict(self).items()
                  if (name not in LATER_FIELDS or value != LATER_FIELDS[name])
                  and not (name == "lr" and self.freeze_encoder)}
        digest = hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]
        encoder = "frozen" if self.freeze_encoder else f"ft{self.epochs}"
        return f"{self.loss}-{encoder}-s{self.seed}-{digest}"

    def settings(self) -> TrainSettings:
        return TrainSettings(loss=self.loss, margin=self.margin, threshold=self.threshold, epochs=self.epochs,
                             seed=self.seed, freeze_encoder=self.freeze_encoder, head_epochs=self.head_epochs,
                             batching=self.batching, lr=self.lr)

    def recipe(self) -> str:
        """The training recipe in words, for report tables."""
        if self.freeze_encoder:
            return f"frozen ({self.head_epochs} probe epochs)"
        return f"LP-FT ({self.head_epochs} probe + {self.epochs} fine-tune epochs)"


FORMER_LR = 2e-5  # the encoder's rate in pars train's recipe before 2026-12-02
LATER_FIELDS = {"length_feature": False, "batching": "mixed", "lr": FORMER_LR}
_TRAIN_DEFAULTS = TrainSettings()
# `pars train`'s recipe: a linear probe of the head, then fine-tuning of the whole ranker (its own defaults)
PARS_RECIPE = RunSpec(freeze_encoder=False, epochs=_TRAIN_DEFAULTS.epochs, head_epochs=_TRAIN_DEFAULTS.head_epochs)


LPFT_ROW = "LP-FT (pars train's recipe)"
# the LP-FT ablation rows (3 seeds each): what each changes in pars train's recipe
LPFT_CHANGES = {LPFT_ROW: {}, "LP-FT, lr 2e-5 (the recipe before 2026-12-02)": {"lr": FORMER_LR},
                "LP-FT, mixed batches": {"batching": "mixed"}}


@dataclass(frozen=True)
class PlanEntry:
    """Where a run's result goes in the report: a table, a row of it, and the run (one seed of the row)."""

    table: str  # "main" | "frozen" | "ablation" | "cross_model"
    row: str
    spec: RunSpec


def build_plan(quick: bool, available_models: set[str]) -> list[PlanEntry]:
    """The benchmark grid, most wanted runs first (an interrupted benchmark still leaves the key results).

    Full: the main comparison is the four losses trained with `pars train`'s recipe (linear probe, then
    fine-tuning) over 3 seeds (seed 0 of each loss first); then the four losses on the frozen encoder over 3
    seeds, ablations and cross-model on the frozen encoder, seed 0; last the LP-FT ablation rows (3 seeds: the
    main table's margin runs, at the encoder's former learning rate, with mixed batches). Quick (under 10 minutes on
    2 cores): no fine-tuning, so the main comparison is the frozen encoder's, seed 0, and there is no 256-token
    ablation.
    """
    frozen = RunSpec(freeze_encoder=True)
    seeds = SEEDS[:1] if quick else SEEDS
    frozen_losses = [replace(frozen, loss=loss, seed=s) for s in seeds for loss in LOSSES]
    ablations = {"threshold 0": {"threshold": 0.0}, "threshold 0.1": {"threshold": 0.1},
                 "threshold 0.4": {"threshold": 0.4}, "margin 0.5": {"margin": 0.5}, "margin 2": {"margin": 2.0},
                 "per-model labels": {"label_mode": "per-model"}, "no length feature": {"length_feature": False}}
    if not quick:
        ablations["max length 256"] = {"max_length": 256}
    entries = [PlanEntry("ablation", "PARS default (frozen)", frozen)]
    entries += [PlanEntry("ablation", row, replace(frozen, **change)) for row, change in ablations.items()]
    entries.append(PlanEntry("cross_model", "generalist (frozen)", frozen))
    entries += [PlanEntry("cross_model", m, replace(frozen, label_mode="per-model", train_model=m))
                for m in CROSS_MODELS if m in available_models]
    if quick:
        return [PlanEntry("main", spec.loss, spec) for spec in frozen_losses] + entries
    tuned = [PlanEntry("main", loss, replace(PARS_RECIPE, loss=loss, seed=s)) for s in SEEDS for loss in LOSSES]
    frozen_table = [PlanEntry("frozen", spec.loss, spec) for spec in frozen_losses]
    extra = [PlanEntry("ablation", row, replace(PARS_RECIPE, seed=s, **change)) for s in SEEDS
             for row, change in LPFT_CHANGES.items()]
    extra.append(PlanEntry("cross_model", "generalist (LP-FT)", PARS_RECIPE))
    return tuned[:4] + frozen_table + entries + tuned[4:] + extra


@dataclass(frozen=True)
class BenchData:
    """The records of one data set, split once by prompt; every run is scored on `test_prompts`."""

    source: str
    split: PromptSplit
    parts: dict[str, list[LengthRecord]]
    fingerprint: str

    @property
    def test(self) -> list[LengthRecord]:
        return self.parts["test"]

    @property
    def test_prompts(self) -> list[str]:
        return distinct_prompts(self.parts["test"])

    @property
    def models(self) -> set[str]:
        return {r.model for part in self.parts.values() for r in part}


def load_bench_data(data: str | None = None, split_seed: int = 0) -> BenchData:
    job = TrainJob(data=data, split_seed=split_seed, open_lengths=False)  # the committed comparison's data
    records = load_job_records(job)
    split = PromptSplit(seed=split_seed)
    return BenchData(data or "bundled", split, split.partition(records), data_fingerprint(records))


@dataclass(frozen=True)
class RunOutcome:
    spec: RunSpec
    scores: list[float]  # one per `BenchData.test_prompts`, in that order
    train_seconds: float
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    # the 1-minute load average before and after training: train_seconds mean little on a busy machine
    # (None: cached before the benchmark recorded it)
    load_average: tuple[float, float] | None = None

    def to_dict(self) -> dict:
        return {**asdict(self), "spec": asdict(self.spec)}


def _rows_for(records: Sequence[LengthRecord], model: str | None) -> list[LengthRecord]:
    return list(records) if model is None else [r for r in records if r.model == model]


def train_run(spec: RunSpec, data: BenchData, embeddings: EmbeddingCache, save_to: Path | None = None) -> RunOutcome:
    """Train one ranker on the train prompts (of `spec.train_model` only, if set) and score the test prompts.

    `embeddings`: the pretrained encoder's vectors, shared by every run, so each prompt is encoded once for
    all head-only training (frozen runs, and the linear probe of fine-tuned ones) and frozen test scores.
    """
    settings = spec.settings()
    train_labels = group_by_prompt(_rows_for(data.parts["train"], spec.train_model), spec.label_mode)
    val_labels = group_by_prompt(_rows_for(data.parts["val"], spec.train_model), spec.label_mode)
    head_outputs = len(settings.bucket_edges) + 1 if spec.loss == "classify" else 1
    predictor = Predictor.untrained(max_length=spec.max_length, head_outputs=head_outputs, seed=spec.seed,
                                    length_feature=spec.length_feature)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    result = train(predictor, train_labels, val_labels, settings, embeddings=embeddings)
    seconds = round(time.perf_counter() - started, 1)
    load_average = (load_before, os.getloadavg()[0])
    if spec.freeze_encoder:  # still the pretrained encoder: its test vectors are (or go) in the shared cache
        scores = embeddings.scores(predictor, data.test_prompts)
    else:
        scores = predictor.score(data.test_prompts, batch_size=64)
    if save_to is not None:
        predictor.config.bucket_edges = list(settings.bucket_edges) if head_outputs > 1 else []
        predictor.config.training = {**asdict(settings), "label_mode": spec.label_mode, "models": "all",
                                     "split": data.split.to_dict(), "data_fingerprint": data.fingerprint,
                                     "train_prompts": len(train_labels.prompts), "train_seconds": seconds,
                                     "result": result.to_dict(), "benchmark_run": spec.key}
        predictor.save(save_to)
        log.info("saved the %s checkpoint to %s", spec.loss, save_to)
    return RunOutcome(spec, [float(s) for s in scores], seconds, result.best_epoch,
                      [asdict(h) for h in result.history], load_average)


def _cache_path(out: Path, spec: RunSpec) -> Path:
    return out / "runs" / f"{spec.key}.json"


def load_outcome(out: Path, spec: RunSpec, data: BenchData) -> RunOutcome | None:
    """A cached outcome of `spec` on exactly this data and split, or None."""
    path = _cache_path(out, spec)
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    if saved.get("data_fingerprint") != data.fingerprint or len(saved["scores"]) != len(data.test_prompts):
        return None
    load_average = saved.get("load_average")
    return RunOutcome(spec, saved["scores"], saved["train_seconds"], saved["best_epoch"], saved["history"],
                      tuple(load_average) if load_average else None)


def save_outcome(out: Path, outcome: RunOutcome, data: BenchData) -> None:
    path = _cache_path(out, outcome.spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**outcome.to_dict(), "data_fingerprint": data.fingerprint}
    payload["scores"] = [round(s, 5) for s in outcome.scores]
    path.write_text(json.dumps(payload) + "\n")


RunHook = Callable[[int, int, RunSpec, bool], None]  # (done, total, spec, was cached) after each run


def run_plan(plan: Sequence[PlanEntry], data: BenchData, out: Path, checkpoint_dir: Path | None = None,
             on_run: RunHook | None = None, train_missing: bool = True) -> dict[RunSpec, RunOutcome]:
    """Train (or load from the cache) every distinct run of the plan, in plan order.

    With `checkpoint_dir`, each loss's seed-0 run of the main comparison is saved as `<dir>/predictor-<loss>`
    (a complete checkpoint that `Predictor.load` opens: the serving benchmark's baseline predictors).
    Without `train_missing`, runs that are not cached are left out (a report of what has finished).
    """
    specs = list(dict.fromkeys(entry.spec for entry in plan))
    kept = {e.spec for e in plan if e.table == "main" and e.spec.seed == 0} if checkpoint_dir is not None else set()
    embeddings = EmbeddingCache()
    outcomes = {}
    for done, spec in enumerate(specs, start=1):
        outcome = load_outcome(out, spec, data)
        cached = outcome is not None
        if outcome is None and not train_missing:
            continue
        if outcome is None:
            save_to = checkpoint_dir / f"predictor-{spec.loss}" if spec in kept else None
            outcome = train_run(spec, data, embeddings, save_to)
            save_outcome(out, outcome, data)
        outcomes[spec] = outcome
        if on_run:
            on_run(done, len(specs), spec, cached)
    return outcomes
