"""`pars train`, `pars distill`, `pars eval` and `pars score`: the ranker's own commands."""

from __future__ import annotations

import codecs
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import IO, Annotated, Optional

import typer
from rich.table import Table

from pars.cli.checks import check_checkpoints, check_continuation, check_output_dir, check_train_options
from pars.cli.common import PredictorOption, app, console, fail, load_predictor, parse_models, print_table, progress_bar
from pars.paths import default_predictor_dir

REPORT_MODELS = ("gpt4_1106_preview", "Meta-Llama-3-70B-Instruct", "Mistral-7B-Instruct-v0.2", "vicuna-13b-v1.5",
                 "sky-t1-32b")


@app.command("train")
def train_command(
    out: Annotated[Path, typer.Option(help="Where to write the checkpoint directory")] = default_predictor_dir(),
    data: Annotated[Optional[Path], typer.Option(help="Bundled data dir or a JSONL file [default: data/]")] = None,
    models: Annotated[str, typer.Option(help="'all' or comma-separated model names")] = "all",
    label: Annotated[str, typer.Option(help="per-model | consensus")] = "consensus",
    loss: Annotated[str, typer.Option(help="margin | listmle | pointwise | classify")] = "margin",
    encoder: Annotated[Optional[str], typer.Option(help="Packaged encoder name or a local HF directory")] = None,
    pooling: Annotated[str, typer.Option(help="mean | cls")] = "mean",
    threshold: Annotated[float, typer.Option(help="Minimum relative length gap of a training pair (0 disables)")] = 0.2,
    margin: Annotated[float, typer.Option(min=0.0, help="Margin of the ranking loss")] = 1.0,
    epochs: Annotated[int, typer.Option(min=0, help="Fine-tuning passes over the training prompts (after the linear probe)")] = 3,
    max_length: Annotated[int, typer.Option(min=2, help="Prompt tokens the encoder reads (at most its position embeddings: 512 for MiniLM)")] = 128,
    truncation: Annotated[str, typer.Option(help="head: the encoder reads a longer prompt's first max-length tokens | head-tail: its first and last halves")] = "head",
    batch_size: Annotated[int, typer.Option(min=2, help="Prompts per step (all kept pairs among them are used; pairs need 2)")] = 32,
    lr: Annotated[Optional[float], typer.Option(help="Encoder learning rate [default: 1e-4; 2e-5 with --init-from]")] = None,
    seed: Annotated[int, typer.Option(help="Seed of initialisation and batch order")] = 0,
    split_seed: Annotated[int, typer.Option(help="Seed of the train/validation/test split by prompt text")] = 0,
    extra_prompts: Annotated[int, typer.Option(min=0, help="Mix in this many prompts of data/extra_lengths.jsonl.gz")] = 0,
    extra_sources: Annotated[str, typer.Option(help="'all' or comma-separated sources of the extra prompts (e.g. flask)")] = "all",
    open_lengths: Annotated[bool, typer.Option(help="With the bundled data and every model: mix in data/open/'s lengths of 13 open models (the models vLLM users serve; source 'open')")] = True,
    freeze_encoder: Annotated[bool, typer.Option(help="Train only the head on cached embeddings (fast)")] = False,
    head_epochs: Annotated[int, typer.Option(min=0, help="Linear-probe passes: the head alone on frozen features, before fine-tuning (LP-FT) or, with --freeze-encoder, all of training; 0: no linear probe")] = 60,
    init_from: Annotated[Optional[Path], typer.Option(help="Continue from this checkpoint (its encoder, pooling, max length and head) on --data; with --freeze-encoder only the head moves (seconds); the new checkpoint records its lineage")] = None,
    batching: Annotated[str, typer.Option(help="mixed: batches drawn from every prompt | by-source: each batch from one source's prompts (all its pairs usable) | balanced: by-source, with as many batches of every source as of the largest")] = "by-source",
    length_feature: Annotated[bool, typer.Option(help="The head also reads the prompt's log length in characters (the encoder reads only its first max-length tokens)")] = True,
    threads: Annotated[Optional[int], typer.Option(min=1, help="torch CPU threads")] = None,
) -> None:
    """Train the length ranker and save a checkpoint directory."""
    import torch

    from pars.data import DataError
    from pars.jobs import TrainJob, evaluate_predictor, run_training
    from pars.predictor import EncoderNotFound
    from pars.predictor.training import CONTINUATION_LR, TrainSettings

    if lr is None:
        lr = TrainSettings.lr if init_from is None else CONTINUATION_LR
    if init_from is None:
        check_train_options(out, encoder, max_length, truncation, pooling, label, lr)
    else:
        check_continuation(init_from, encoder, max_length, truncation, pooling, length_feature)
        check_train_options(out, None, 2, "head", "mean", label, lr)
    if threads:
        torch.set_num_threads(threads)
    try:
        settings = TrainSettings(loss=loss, margin=margin, threshold=threshold, epochs=epochs, batch_size=batch_size,
                                 lr=lr, seed=seed, freeze_encoder=freeze_encoder, head_epochs=head_epochs,
                                 batching=batching)
        job = TrainJob(data=str(data) if data else None, models=parse_models(models), label_mode=label,
                       encoder=encoder, pooling=pooling, max_length=max_length, truncation=truncation,
                       length_feature=length_feature, split_seed=split_seed,
                       extra_prompts=extra_prompts, extra_sources=parse_models(extra_sources),
                       open_lengths=open_lengths, settings=settings,
                       init_from=str(init_from) if init_from else None)
        with progress_bar() as progress:
            task = progress.add_task(f"training ({loss})", total=None, info="")

            def on_step(step: int, total: int, loss_value: float) -> None:
                progress.update(task, completed=step, total=total, info=f"loss {loss_value:.3f}")

            predictor, result, parts = run_training(job, out, on_step)
    except (DataError, EncoderNotFound, ValueError) as err:
        fail(str(err))
    for epoch in result.history:
        console.print(f"{epoch.stage} epoch {epoch.epoch}: loss {epoch.train_loss:.4f}, validation pair accuracy "
                      f"{epoch.val_pairwise_accuracy:.4f}, pairs kept {epoch.pairs_kept:,} filtered {epoch.pairs_filtered:,}")
    console.print(f"best epoch {result.best_epoch} of the {result.best_stage} stage; checkpoint saved to {out} "
                  f"({predictor.config.training['train_seconds']} s of training)")
    try:
        print_evaluation(evaluate_predictor(predictor, parts["test"], threshold), "held-out test prompts")
    except ValueError as err:
        console.print(f"no held-out evaluation: {err}")


@app.command("distill")
def distill_command(
    teacher: Annotated[Path, typer.Option(help="The fine-tuned ranker to distil")] = default_predictor_dir(),
    out: Annotated[Optional[Path], typer.Option(help="Where to write the student [default: TEACHER/student]")] = None,
    prompts: Annotated[Optional[list[Path]], typer.Option(help="More prompts to distil on: a JSONL file with a 'prompt' field (repeatable); no lengths needed")] = None,
    max_prompts: Annotated[Optional[int], typer.Option(min=1, help="Distil on a seeded sample of this many training prompts [default: all]")] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Passes over the distillation prompts [default: 6]")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sample, initialisation and batch order")] = 0,
    threads: Annotated[Optional[int], typer.Option(min=1, help="torch CPU threads")] = None,
) -> None:
    """Distil the teacher into a static-embedding student that scores in microseconds (serve it with --predictor)."""
    import torch

    from pars.data import DataError
    from pars.jobs import DistillJob, evaluate_predictor, run_distillation, test_records
    from pars.predictor import CheckpointError
    from pars.predictor.distillation import DistillSettings

    out = out or teacher / "student"
    check_checkpoints([teacher])
    check_output_dir(out, "--out")
    for path in prompts or []:
        if not path.is_file():
            fail(f"--prompts {path}: no such file")
    if threads:
        torch.set_num_threads(threads)
    job = DistillJob(str(teacher), tuple(str(p) for p in prompts or ()), max_prompts,
                     DistillSettings(seed=seed, **({"epochs": epochs} if epochs else {})))
    try:
        with progress_bar() as progress:
            task = progress.add_task("distilling", total=None, info="")

            def on_progress(done: int, total: int, what: str) -> None:
                progress.update(task, completed=done, total=total, description=what, info="")

            student = run_distillation(job, out, on_progress)
    except (DataError, CheckpointError, ValueError) as err:
        fail(str(err))
    training = student.config.training
    console.print(f"student saved to {out}: {training['train_prompts']:,} prompts, teacher scoring "
                  f"{training['teacher_scoring_seconds']} s, training {training['train_seconds']} s, validation tau vs "
                  f"teacher {training['result']['epochs'][-1]['val_tau_vs_teacher']:.3f}")
    print_evaluation(evaluate_predictor(student, test_records(student)), "held-out test prompts (student)")


def print_evaluation(evaluation, title: str) -> None:
    """Balanced overall first (mean over sources), then each source, the mean over models, and a few models."""
    table = Table(title=f"Ranking quality on {title}")
    intervals = evaluation.tau_intervals
    columns = ("rows", "Kendall tau-b", *(["tau, 95 % interval over test prompts"] if intervals else []),
               "Spearman", "pair accuracy", "n")
    for column in columns:
        table.add_column(column, justify="left" if column == "rows" else "right")

    def add(name: str, m: dict, n: object = "", interval: tuple[float, float] | None = None) -> None:
        shown_interval = [f"{interval[0]:.3f} - {interval[1]:.3f}" if interval else ""] if intervals else []
        table.add_row(name, f"{m['kendall_tau']:.3f}", *shown_interval, f"{m['spearman']:.3f}",
                      f"{m['pairwise_accuracy']:.3f}", str(n))

    overall = evaluation.overall
    if len(evaluation.per_source) > 1:
        add(f"balanced (mean of {len(evaluation.per_source)} sources)", evaluation.balanced, overall["n"],
            intervals.get("balanced"))
        for source, m in evaluation.per_source.items():
            add(f"  source {source} ({m['models']} models)", m, m["n"], intervals.get(source))
    only_source = next(iter(evaluation.per_source)) if len(evaluation.per_source) == 1 else None
    add(f"overall (mean of {overall['models']} models)", overall, overall["n"], intervals.get(only_source))
    shown = [name for wanted in REPORT_MODELS for name in evaluation.per_model
             if name == wanted or name.endswith(f"/{wanted}")]
    if len(evaluation.per_model) <= 12:
        shown = list(evaluation.per_model)
    for model in shown:
        add(model, asdict(evaluation.per_model[model]), evaluation.per_model[model].n)
    print_table(table)


@app.command("eval")
def eval_command(
    predictor: PredictorOption = None,
    data: Annotated[Optional[Path], typer.Option(help="JSONL file [default: test prompts of the bundled data]")] = None,
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Length gap of the pairs that pair accuracy counts")] = 0.2,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object to stdout")] = False,
    bootstrap: Annotated[int, typer.Option(min=0, help="Resample the test prompts this many times for 95 % intervals of the balanced and per-source tau (0: none; 200 take about half a minute on the bundled test split)")] = 0,
) -> None:
    """Kendall's tau-b, Spearman and pairwise accuracy: balanced (mean over sources), per source, overall (mean over
    models) and per model."""
    from pars.data import DataError
    from pars.jobs import evaluate_predictor, test_records

    loaded = load_predictor(predictor)
    try:
        records = test_records(loaded, str(data) if data else None)
        evaluation = evaluate_predictor(loaded, records, threshold, bootstrap_rounds=bootstrap)
    except (DataError, ValueError) as err:
        fail(str(err))
    if as_json:
        sys.stdout.write(json.dumps(evaluation.to_dict()) + "\n")
    else:
        print_evaluation(evaluation, str(data) if data else "held-out test prompts")


BLANK_SCORE = "nan"  # the score line of a blank prompt: output line i always belongs to input line i


def read_prompt_lines(stream: IO[bytes]) -> tuple[list[str], int]:
    """One prompt per line of `stream`, blank lines included; a UTF-8 BOM at the start is dropped. Returns
    the prompts and how many lines were not valid UTF-8 (their bad bytes become U+FFFD; they are still scored)."""
    prompts, undecodable = [], 0
    for number, raw in enumerate(stream):
        raw = raw[:-1] if raw.endswith(b"\n") else raw
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        if number == 0 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        try:
            prompts.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            prompts.append(raw.decode("utf-8", errors="replace"))
            undecodable += 1
    return prompts, undecodable


@app.command("score")
def score_command(
    prompts: Annotated[Optional[list[str]], typer.Argument(help="Prompts; one per stdin line if none given")] = None,
    predictor: PredictorOption = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Prompts per forward pass")] = 32,
) -> None:
    """Print one score per prompt (higher = longer expected response), one line per argument or stdin line, in order.

    A blank prompt gets `nan`, so output line i always belongs to input line i. Stdin is read as UTF-8: a BOM is
    dropped, and a line that is not valid UTF-8 is scored with its bad bytes replaced (U+FFFD), with a warning.
    """
    texts, undecodable = (list(prompts), 0) if prompts else read_prompt_lines(sys.stdin.buffer)
    if not texts:
        fail("no prompts given: pass them as arguments or one per line on stdin")
    if undecodable:
        console.print(f"warning: {undecodable} line(s) were not valid UTF-8; their undecodable bytes were replaced "
                      "by U+FFFD before scoring", soft_wrap=True)
    loaded = load_predictor(predictor)
    scored = [i for i, text in enumerate(texts) if text.strip()]
    lines = [BLANK_SCORE] * len(texts)
    if scored:
        for i, score in zip(scored, loaded.score([texts[i] for i in scored], batch_size=batch_size)):
            lines[i] = f"{score:.6f}"
    sys.stdout.write("".join(f"{line}\n" for line in lines))
