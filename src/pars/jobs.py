"""The ranker jobs behind the CLI and the benchmarks: load -> split by prompt -> labels -> train -> save; evaluate.

This is where I/O meets the pure pieces (data, pairs, losses, metrics).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

import pars
from pars.data.dedup import NearDuplicateIndex
from pars.data.labels import LabelledPrompts, group_by_prompt
from pars.data.loaders import load_jsonl, load_records
from pars.data.open_models import OPEN_DIR, OPEN_SOURCE, load_open
from pars.data.records import LengthRecord
from pars.data.splits import PromptSplit, normalise_prompt
from pars.evaluation import Evaluation, bootstrap_tau_intervals, distinct_prompts, evaluate_scores, score_table
from pars.paths import bundled_data_dir
from pars.predictor.embeddings import EmbeddingCache
from pars.predictor.distillation import DistillSettings, ProgressHook as DistillProgress, train_student
from pars.predictor.model import Predictor
from pars.predictor.student import StaticStudent
from pars.predictor.training import ProgressHook, TrainResult, TrainSettings, train

log = logging.getLogger(__name__)

EXTRA_FILE = "extra_lengths.jsonl.gz"


@dataclass(frozen=True)
class TrainJob:
    data: str | None = None  # bundled data dir (default) or a JSONL file
    models: tuple[str, ...] | None = None  # None: every non-variant model
    label_mode: str = "consensus"
    label_column: str = "tok_llama3"
    encoder: str | None = None
    pooling: str = "mean"
    max_length: int = 128
    truncation: str = "head"  # which max_length tokens of a longer prompt the encoder reads (TRUNCATIONS)
    length_feature: bool = True  # the head also reads the prompt's length (pars.predictor.model.length_feature)
    split_seed: int = 0
    extra_prompts: int = 0  # how many prompts of data/extra_lengths.jsonl.gz to mix in (0: none)
    extra_sources: tuple[str, ...] | None = None  # draw them only from these sources of it (None: every source)
    # mix in data/open/'s open-model lengths (source "open"); only with the bundled data and every model
    open_lengths: bool = True
    settings: TrainSettings = field(default_factory=TrainSettings)
    init_from: str | None = None  # continue from this checkpoint (its encoder, pooling, max length, head)


def starting_predictor(job: TrainJob, head_outputs: int) -> Predictor:
    """A fresh ranker, or the checkpoint `job.init_from` (fp32, for training) when its loss matches the job's."""
    if job.init_from is None:
        return Predictor.untrained(job.encoder, job.pooling, job.max_length, head_outputs, seed=job.settings.seed,
                                   length_feature=job.length_feature, truncation=job.truncation)
    predictor = Predictor.load(job.init_from, precision="fp32")
    parent_loss = predictor.config.training.get("loss", "margin")
    if parent_loss != job.settings.loss or predictor.config.head_outputs != head_outputs:
        raise ValueError(f"--init-from {job.init_from} was trained with loss {parent_loss} "
                         f"({predictor.config.head_outputs} head outputs); continue it with --loss {parent_loss}")
    return predictor


def lineage(init_from: str, parent_training: dict) -> dict:
    """What a continued checkpoint records of where it started: the parent's path, data and its own lineage."""
    return {"path": str(Path(init_from).resolve()), "data": parent_training.get("data"),
            "data_fingerprint": parent_training.get("data_fingerprint"),
            "train_prompts": parent_training.get("train_prompts"), "parent": parent_training.get("init_from")}


def data_fingerprint(records: Sequence[LengthRecord]) -> str:
    """A short hash of the training rows, so a checkpoint says exactly what it learned from."""
    digest = hashlib.sha256()
    for key in sorted(f"{normalise_prompt(r.prompt)}\x00{r.model}\x00{r.response_tokens}" for r in records):
        digest.update(key.encode())
    return digest.hexdigest()[:16]


def load_job_records(job: TrainJob) -> list[LengthRecord]:
    """The job's data: a JSONL file, or the bundled lengths (of `job.models`) and, with `job.open_lengths` and every
    model, the open models' (`bundled_records`)."""
    if job.data is None and job.models is None:
        return bundled_records(job.label_column, job.open_lengths)
    return load_records(job.data or bundled_data_dir(), label=job.label_column, models=job.models)


def bundled_records(label: str = "tok_llama3", open_lengths: bool = True) -> list[LengthRecord]:
    """The main bundle's rows and, with `open_lengths`, the open models' (`load_open_records`): one split of both
    by prompt text, so an open test prompt is never trained on, and the balanced metric gains the `open` source."""
    records = load_records(bundled_data_dir(), label=label)
    if open_lengths:
        records += load_open_records(distinct_prompts(records))
    return records


def main_bundle_copies(prompts: Sequence[str], main_prompts: Sequence[str], what: str) -> set[str]:
    """The `prompts` that copy a main-bundle prompt in another layout (`NearDuplicateIndex`): the two texts can
    fall in different split parts, and training on one would leak the other: the copies to leave out."""
    main = NearDuplicateIndex(main_prompts)
    copies = {prompt for prompt in set(prompts) if prompt in main}
    log.info("%s: %d prompts that copy main-bundle prompts left out", what, len(copies))
    return copies


def load_open_records(main_prompts: Sequence[str]) -> list[LengthRecord]:
    """One record per (prompt, open model) of data/open/ (the mean of its sampled lengths, source "open"), without
    the prompts that copy a main-bundle prompt (`main_bundle_copies`)."""
    rows = load_open(bundled_data_dir() / OPEN_DIR)
    copies = main_bundle_copies([r.prompt for r in rows], main_prompts, "open-model set")
    return [row.record() for row in rows if row.prompt not in copies]


def concat_labels(first: LabelledPrompts, second: LabelledPrompts) -> LabelledPrompts:
    """Stack two label sets with disjoint columns, so no pair ever crosses the two data sets."""
    rows = len(first.prompts) + len(second.prompts)
    lengths = np.full((rows, len(first.label_names) + len(second.label_names)), np.nan)
    lengths[: len(first.prompts), : len(first.label_names)] = first.lengths
    lengths[len(first.prompts):, len(first.label_names):] = second.lengths
    names = first.label_names + [f"extra:{n}" for n in second.label_names]
    return LabelledPrompts(first.prompts + second.prompts, names, lengths)


def load_extra_records(main_prompts: Sequence[str], sources: Sequence[str] | None = None) -> list[LengthRecord]:
    """The extra set's rows (of `sources`; None: all), without the prompts that copy a main-bundle prompt in
    another layout (`NearDuplicateIndex`): the two texts can fall in different split parts, and training on
    one would leak the other."""
    records = load_jsonl(bundled_data_dir() / EXTRA_FILE)
    if sources is not None:
        unknown = sorted(set(sources) - {r.source for r in records})
        if unknown:
            raise ValueError(f"no extra source {', '.join(unknown)} in {EXTRA_FILE}; it has "
                             f"{', '.join(sorted({r.source for r in records}))}")
        records = [r for r in records if r.source in sources]
    copies = main_bundle_copies([r.prompt for r in records], main_prompts, f"extra set ({len(records)} rows)")
    return [r for r in records if r.prompt not in copies]


def extra_training_labels(job: TrainJob, split: PromptSplit, main_prompts: Sequence[str]) -> LabelledPrompts | None:
    """A seeded sample of the extra prompts (`load_extra_records`, of `job.extra_sources`) in the TRAIN part."""
    if job.extra_prompts <= 0:
        return None
    records = load_extra_records(main_prompts, job.extra_sources)
    labels = group_by_prompt([r for r in records if split.part_of(r.prompt) == "train"], job.label_mode)
    rng = np.random.default_rng(job.split_seed)
    keep = np.sort(rng.choice(len(labels.prompts), size=min(job.extra_prompts, len(labels.prompts)), replace=False))
    return labels.rows(keep)


QUANTILE_POINTS = 101
MIN_QUANTILE_PROMPTS = 20


def score_quantiles(predictor: Predictor, parts: dict[str, list[LengthRecord]]) -> list[float]:
    """The trained ranker's score quantiles on held-out (validation) prompts, or on its training prompts when
    fewer than 20 are held out (a small log continued with --init-from)."""
    prompts = distinct_prompts(parts["val"])
    if len(prompts) < MIN_QUANTILE_PROMPTS:
        prompts = distinct_prompts(parts["train"])
    if not prompts:
        return []
    return quantile_points(predictor.score(prompts, batch_size=64))


def quantile_points(scores: np.ndarray) -> list[float]:
    """The scores at 0 %, 1 %, ..., 100 %: where a score ranks (`PredictorConfig.score_quantiles`)."""
    return [float(q) for q in np.quantile(scores, np.linspace(0.0, 1.0, QUANTILE_POINTS))]


def run_training(job: TrainJob, out: str | Path | None = None, on_step: ProgressHook | None = None,
                 records: Sequence[LengthRecord] | None = None, embeddings: EmbeddingCache | None = None
                 ) -> tuple[Predictor, TrainResult, dict[str, list[LengthRecord]]]:
    """Train a predictor as `job` says, on `records` (default: the job's data); save it to `out` when given,
    with the score quantiles `pars score-server` ranks by. `embeddings` serves the head-only stages (share one between
    runs on the same pretrained encoder). Returns the split records too."""
    records = load_job_records(job) if records is None else records
    split = PromptSplit(seed=job.split_seed)
    parts = split.partition(records)
    train_labels = group_by_prompt(parts["train"], job.label_mode)
    val_labels = group_by_prompt(parts["val"], job.label_mode)
    extra = extra_training_labels(job, split, distinct_prompts(records))
    if extra is not None:
        train_labels = concat_labels(train_labels, extra)
    log.info("training on %d prompts (%d validation, %d test)", len(train_labels.prompts),
             len(val_labels.prompts), len(distinct_prompts(parts["test"])))
    settings = job.settings
    head_outputs = len(settings.bucket_edges) + 1 if settings.loss == "classify" else 1
    predictor = starting_predictor(job, head_outputs)
    parent_training = dict(predictor.config.training)
    started = time.perf_counter()
    result = train(predictor, train_labels, val_labels, settings, on_step, embeddings=embeddings,
                   fresh_head=job.init_from is None)
    predictor.config.bucket_edges = list(settings.bucket_edges) if head_outputs > 1 else []
    predictor.config.training = {
        **asdict(settings),
        "label_mode": job.label_mode,
        "label_column": job.label_column,
        "models": list(job.models) if job.models else "all",
        "data": str(job.data or "bundled"),
        "extra_prompts": len(extra.prompts) if extra is not None else 0,
        "extra_sources": list(job.extra_sources) if extra is not None and job.extra_sources else "all",
        "open_lengths": any(r.source == OPEN_SOURCE for r in records),
        "split": split.to_dict(),
        "data_fingerprint": data_fingerprint(parts["train"]),
        "train_prompts": len(train_labels.prompts),
        "train_seconds": round(time.perf_counter() - started, 1),
        "result": result.to_dict(),
        "package_version": pars.__version__,
        "init_from": lineage(job.init_from, parent_training) if job.init_from else None,
    }
    if out is not None:
        predictor.config.score_quantiles = score_quantiles(predictor, parts)
        predictor.save(out)
    return predictor, result, parts


def evaluate_predictor(predictor: Predictor, records: Sequence[LengthRecord], threshold: float = 0.2,
                       embeddings: EmbeddingCache | None = None, bootstrap_rounds: int = 0) -> Evaluation:
    """Score each distinct prompt once, then report per model. With `embeddings` (vectors of this predictor's
    own encoder, e.g. after head-only training) the scores are its head on the cached vectors. With
    `bootstrap_rounds`, the per-source and balanced taus get prompt-bootstrap intervals."""
    prompts = distinct_prompts(records)
    scores = predictor.score(prompts, batch_size=64) if embeddings is None else embeddings.scores(predictor, prompts)
    score_of = score_table(prompts, scores)
    evaluation = evaluate_scores(records, score_of, threshold)
    if bootstrap_rounds <= 0:
        return evaluation
    return replace(evaluation, tau_intervals=bootstrap_tau_intervals(records, score_of, bootstrap_rounds))


def test_records(predictor: Predictor, data: str | None = None, label: str = "tok_llama3") -> list[LengthRecord]:
    """The test part of the bundled data (with the open models' lengths, `bundled_records`) or of a data directory
    under the predictor's own split, or every row of a JSONL file."""
    if data is not None and not Path(data).is_dir():
        return load_records(data, label=label)
    records = bundled_records(label) if data is None else load_records(data, label=label)
    return predictor.config.split.partition(records)["test"]


@dataclass(frozen=True)
class DistillJob:
    teacher: str
    prompt_files: tuple[str, ...] = ()  # JSONL files with a "prompt" field, beside the bundled and extra prompts
    max_prompts: int | None = None  # a seeded sample of the training prompts (None: all of them)
    settings: DistillSettings = field(default_factory=DistillSettings)


def distillation_prompts(job: DistillJob, split: PromptSplit) -> tuple[list[str], list[str]]:
    """(training prompts, validation prompts), distinct by normalised text. Validation: the bundled prompts in
    the VAL part of the teacher's split. Training: the bundled TRAIN part, the whole extra set and
    `job.prompt_files`, less every prompt that copies a bundled prompt in another layout (`NearDuplicateIndex`):
    no bundled validation or test prompt is distilled on, under any layout. "Bundled" includes the open models'
    prompts (`bundled_records`). The extra set's prompts carry no test role (tau is measured on bundled test
    prompts only), so all of them teach the student."""
    from pars.data.loaders import load_prompt_texts

    bundled = distinct_prompts(bundled_records())
    outside = [prompt for path in job.prompt_files for prompt in load_prompt_texts(path)]
    if outside:
        copies = NearDuplicateIndex(bundled)
        outside = [prompt for prompt in outside if prompt not in copies]
    extra = distinct_prompts(load_extra_records(bundled))
    parts = {prompt: split.part_of(prompt) for prompt in bundled}
    seen: set[str] = set()
    train_prompts, val_prompts = [], []
    for prompt in [*bundled, *extra, *outside]:
        key = normalise_prompt(prompt)
        if not key or key in seen:
            continue
        seen.add(key)
        part = parts.get(prompt, "train")
        if part == "train":
            train_prompts.append(prompt)
        elif part == "val":
            val_prompts.append(prompt)
    if job.max_prompts is not None and job.max_prompts < len(train_prompts):
        keep = np.sort(np.random.default_rng(job.settings.seed).choice(len(train_prompts), job.max_prompts, replace=False))
        train_prompts = [train_prompts[i] for i in keep]
    return train_prompts, val_prompts


def teacher_scores(teacher: Predictor, prompts: Sequence[str], on_progress: DistillProgress | None = None,
                   chunk: int = 512) -> np.ndarray:
    """The teacher's scores of `prompts`, in chunks so a progress bar moves."""
    scores = np.empty(len(prompts), dtype=np.float32)
    for start in range(0, len(prompts), chunk):
        scores[start:start + chunk] = teacher.score(list(prompts[start:start + chunk]), batch_size=64)
        if on_progress:
            on_progress(min(start + chunk, len(prompts)), len(prompts), "teacher scores")
    return scores


def run_distillation(job: DistillJob, out: str | Path, on_progress: DistillProgress | None = None) -> StaticStudent:
    """Score the distillation prompts with the teacher, train the student, save it to `out` with its score
    quantiles on the validation prompts (what `pars score-server` ranks by)."""
    teacher = Predictor.load(job.teacher)
    started = time.perf_counter()
    train_prompts, val_prompts = distillation_prompts(job, teacher.config.split)
    log.info("distilling on %d prompts (%d validation)", len(train_prompts), len(val_prompts))
    scores = teacher_scores(teacher, train_prompts, on_progress)
    val_scores = teacher_scores(teacher, val_prompts)
    scoring_s = time.perf_counter() - started
    student, result = train_student(teacher, train_prompts, scores, val_prompts, val_scores, job.settings, on_progress)
    student.config.score_quantiles = quantile_points(student.score(val_prompts))
    student.config.training.update({
        "teacher": str(Path(job.teacher).resolve()),
        "teacher_data_fingerprint": teacher.config.training.get("data_fingerprint"),
        "prompt_files": list(job.prompt_files),
        "train_prompts": len(train_prompts),
        "val_prompts": len(val_prompts),
        "teacher_scoring_seconds": round(scoring_s, 1),
        "train_seconds": round(time.perf_counter() - started - scoring_s, 1),
        "result": result.to_dict(),
        "package_version": pars.__version__,
    })
    student.save(out)
    return student
