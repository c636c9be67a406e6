"""The `pars` command: train, eval and score the ranker (plus engine and benchmark commands)."""

from __future__ import annotations

import codecs
import json
import logging
import os
import sys
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import IO, Annotated, NoReturn, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from pars.paths import default_predictor_dir

app = typer.Typer(help="PARS: prompt-aware request scheduling with a pairwise length ranker.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print and save comparison tables and plots.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
console = Console(stderr=True)
REPORT_MODELS = ("gpt4_1106_preview", "Meta-Llama-3-70B-Instruct", "Mistral-7B-Instruct-v0.2", "vicuna-13b-v1.5",
                 "sky-t1-32b")

PredictorOption = Annotated[Optional[Path], typer.Option(help="Checkpoint directory [default: artifacts/predictor]")]
ScorerOption = Annotated[str, typer.Option(help="auto: the distilled student inside --predictor when it holds one (PREDICTOR/student), else --predictor | student | teacher: --predictor itself")]


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False)])
    for noisy in ("transformers", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The CLI owns its process, so it picks the threads (library code never does): the Rust tokenizer stays
    # on the calling thread, here and in the server `pars serve` starts, instead of batching on every core.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def print_table(table: Table) -> None:
    """Tables go to stdout at a readable width even when the terminal is narrow or piped (no cut names)."""
    Console(width=max(Console().width, 140)).print(table)


def print_rows(title: str, headers: list[str], left_columns: int, rows: list[list[str]]) -> None:
    """A result table: the first `left_columns` columns (names) left-aligned, numbers right-aligned."""
    table = Table(title=title)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i < left_columns else "right")
    for row in rows:
        table.add_row(*row)
    print_table(table)


def fail(message: str) -> NoReturn:
    """The one way a command stops on an expected error: one `error:` line on stderr (never wrapped, markup
    escaped) and exit code 2."""
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code=2)


# Edge checks: each runs before any long work (loading data, training, starting engines) and fails in one line.

def check_output_dir(path: Path, option: str) -> None:
    """`path` can become a directory: it is one, or its nearest existing ancestor is a writable directory."""
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                fail(f"{option} {path}: {part} is a file, not a directory")
            if part != path and not os.access(part, os.W_OK | os.X_OK):
                fail(f"{option} {path}: {part} is not writable")
            return


def check_output_file(path: Path, option: str) -> None:
    if path.is_dir():
        fail(f"{option} {path} is a directory; give a file path")
    check_output_dir(path.parent, option)


def check_positive(option: str, value: float | None) -> None:
    """For options whose lower bound 0 is itself not allowed (typer's `min` includes the bound)."""
    if value is not None and not value > 0:
        fail(f"{option} must be > 0, got {value}")


def check_encoder(encoder: str | None, max_length: int) -> None:
    """The encoder is a local one and reads `max_length` tokens (its position embeddings bound it)."""
    from pars.predictor import DEFAULT_ENCODER, EncoderNotFound, resolve_encoder
    from pars.predictor.encoders import encoder_max_tokens

    try:
        limit = encoder_max_tokens(resolve_encoder(encoder))
    except EncoderNotFound as err:
        fail(str(err))
    if limit is not None and max_length > limit:
        fail(f"--max-length {max_length}: encoder {encoder or DEFAULT_ENCODER} reads at most {limit} tokens")


def check_served_model(model: Path | None) -> None:
    """A model dir the user names must hold a model (the default one is built when missing, never theirs)."""
    if model is not None and not (model / "config.json").is_file():
        fail(f"--model {model} has no config.json: give a Hugging Face model directory, or leave --model out "
             f"for the default tiny model")


def start_served_benchmark(length_scale: float, out: Path, model: Path | None) -> str:
    """The checks every benchmark on a served model makes before it starts anything; returns its start (UTC)."""
    from datetime import datetime, timezone

    check_positive("--length-scale", length_scale)
    check_output_dir(out, "--out")
    check_served_model(model)
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def check_checkpoints(directories: Iterable[Path]) -> None:
    from pars.predictor import CheckpointError
    from pars.predictor.model import check_checkpoint

    for directory in directories:
        try:
            check_checkpoint(directory)
        except CheckpointError as err:
            fail(str(err))


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console)


def parse_models(models: str) -> tuple[str, ...] | None:
    return None if models.strip().lower() == "all" else tuple(m.strip() for m in models.split(",") if m.strip())


def load_predictor(path: Path | None):
    from pars.predictor import CheckpointError, load_ranker

    try:
        return load_ranker(path or default_predictor_dir())
    except CheckpointError as err:
        fail(str(err))


def check_train_options(out: Path, encoder: str | None, max_length: int, truncation: str, pooling: str, label: str,
                        lr: float) -> None:
    """What `pars train` can check before it loads data or an encoder (TrainSettings checks the rest)."""
    from pars.data.labels import LABEL_MODES
    from pars.predictor.model import POOLINGS, TRUNCATIONS

    check_output_dir(out, "--out")
    if truncation not in TRUNCATIONS:
        fail(f"--truncation {truncation!r}: choose one of {', '.join(TRUNCATIONS)}")
    if pooling not in POOLINGS:
        fail(f"--pooling {pooling!r}: choose one of {', '.join(POOLINGS)}")
    if label not in LABEL_MODES:
        fail(f"--label {label!r}: choose one of {', '.join(LABEL_MODES)}")
    check_positive("--lr", lr)
    check_encoder(encoder, max_length)


def check_continuation(init_from: Path, encoder: str | None, max_length: int, truncation: str, pooling: str,
                       length_feature: bool) -> None:
    """`--init-from` brings its own encoder, pooling, max length, truncation and head inputs: another one given
    with it is an error."""
    from pars.jobs import TrainJob

    check_checkpoints([init_from])
    defaults = TrainJob()
    given = [f"--{name} {value}" for name, value, default in
             (("encoder", encoder, defaults.encoder), ("max-length", max_length, defaults.max_length),
              ("truncation", truncation, defaults.truncation), ("pooling", pooling, defaults.pooling),
              ("length-feature", length_feature, defaults.length_feature))
             if value != default]
    if given:
        fail(f"{', '.join(given)}: a continued ranker keeps the encoder, pooling, max length, truncation and "
             f"length feature of --init-from {init_from}")


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
                       extra_prompts=extra_prompts, extra_sources=parse_models(extra_sources), settings=settings,
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


@app.command("make-tiny-model")
def make_tiny_model_command(out: Annotated[Path, typer.Argument(help="Directory to write the model to")]) -> None:
    """Build a tiny random-weight Llama model + BPE tokenizer that vLLM serves (offline, deterministic)."""
    from pars.integrations.vllm.tiny_model import make_tiny_model

    check_output_dir(out, "OUT")
    console.print(f"tiny model written to {make_tiny_model(out)}")


@app.command("serve", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def serve_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model directory or name; further args go to vLLM")],
    policy: Annotated[str, typer.Option(help="fcfs | pars | oracle | pointwise | listmle | classify")] = "pars",
    mode: Annotated[str, typer.Option(help="pars: front-end scores + the PARS scheduler class (aging, max wait); "
                                           "priority: front-end scores as vLLM priorities, stock scheduler")] = "pars",
    predictor: PredictorOption = None,
    scorer: ScorerOption = "auto",
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on")] = 8000,
    max_num_seqs: Annotated[Optional[int], typer.Option(min=1, help="vLLM's running batch limit")] = None,
) -> None:
    """Start vLLM's OpenAI-compatible server; requests are scored in its front end, ordered in the engine.

    A `--additional-config` among the vLLM args is merged with PARS's: its `pars` keys win, and a
    `pars.predictor` other than --predictor is an error."""
    from pars.integrations.vllm.policies import get_policy
    from pars.integrations.vllm.serve import exec_server, serve_argv, split_additional_config
    from pars.predictor import CheckpointError
    from pars.predictor.loading import serving_checkpoint
    from pars.predictor.model import check_checkpoint

    try:
        chosen = get_policy(policy)
        user_pars = split_additional_config(ctx.args)[0].get("pars", {})
        if chosen.uses_predictor and not (isinstance(user_pars, dict) and "predictor" in user_pars):
            # the student inside the checkpoint, by default (a pars.predictor the user gave is served as given)
            predictor = serving_checkpoint(predictor or chosen.default_predictor_dir(), scorer)
        argv, env = serve_argv(model, policy, predictor, host, port, max_num_seqs, ctx.args, mode)
        if "PARS_PREDICTOR" in env:
            check_checkpoint(env["PARS_PREDICTOR"])
    except (ValueError, CheckpointError) as err:
        fail(str(err))
    exec_server(argv, env)


def serving_directory(predictor: Path | None, scorer: str) -> Path:
    """The checkpoint an HTTP service scores with (`serving_checkpoint`), or one error line."""
    from pars.predictor import CheckpointError
    from pars.predictor.loading import serving_checkpoint

    try:
        return serving_checkpoint(predictor or default_predictor_dir(), scorer)
    except (CheckpointError, ValueError) as err:
        fail(str(err))


def front_end_scorer(directory: Path):  # noqa: ANN201 - pars.scoring.FrontEndScorer, imported lazily
    """The scorer of an HTTP service: the checkpoint checked first, settings from PARS_* variables (as the
    `pars serve` middleware reads them), one clear line for either problem."""
    from pars.scheduling import SchedulerSettings, SettingsError
    from pars.scoring import FrontEndScorer

    check_checkpoints([directory])
    try:
        settings = SchedulerSettings.from_sources(None, os.environ)  # PARS_FRONTEND_TIMEOUT_S, PARS_SCORE_BATCH, ...
    except SettingsError as err:
        fail(str(err))
    return FrontEndScorer.for_checkpoint(directory, settings)


@app.command("score-server")
def score_server_command(
    predictor: PredictorOption = None,
    scorer: ScorerOption = "auto",
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on")] = 8200,
    max_body_bytes: Annotated[int, typer.Option(min=1, help="Larger request bodies are answered 413")] = 1 << 20,
    max_batch_items: Annotated[int, typer.Option(min=1, help="More prompts in one /score_batch are answered 413")] = 256,
) -> None:
    """Serve ranker scores over HTTP (/score, /score_batch, /health, /metrics) for your own router."""
    import uvicorn

    from pars.route.score_server import build_app

    directory = serving_directory(predictor, scorer)
    app_ = build_app(front_end_scorer(directory), max_body_bytes, max_batch_items)
    console.print(f"scoring with {directory} on http://{host}:{port}")
    uvicorn.run(app_, host=host, port=port, log_level="warning")


@app.command("route")
def route_command(
    upstream: Annotated[str, typer.Option(help="Comma-separated base URLs of vLLM servers run with --scheduling-policy priority")],
    predictor: PredictorOption = None,
    scorer: ScorerOption = "auto",
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on")] = 8100,
    balancer: Annotated[str, typer.Option(help="least-work | least-requests | round-robin")] = "least-work",
    max_body_bytes: Annotated[int, typer.Option(min=1, help="Larger request bodies are answered 413")] = 1 << 20,
    upstream_timeout_s: Annotated[float, typer.Option(min=0.001, help="An upstream answer later than this is a 504")] = 600.0,
    log_lengths: Annotated[Optional[Path], typer.Option(help="Append {prompt, response_tokens, model, ts} per finished request (input to pars train --data / --init-from)")] = None,
    log_prompts: Annotated[str, typer.Option(help="text | hash (the prompt's SHA-256, for privacy)")] = "text",
    score: Annotated[bool, typer.Option(help="--no-score: a plain balancer, no scoring and no priority (replicas serve FCFS)")] = True,
) -> None:
    """An OpenAI-compatible router: scores each request, sets vLLM's priority, picks a replica, forwards it."""
    import uvicorn

    from pars.route.balancing import BALANCERS
    from pars.predictor.model import PredictorConfig
    from pars.route.length_log import PROMPT_MODES
    from pars.route.router import RouterSettings, build_router_app

    upstreams = tuple(u.strip() for u in upstream.split(",") if u.strip())
    bad = [u for u in upstreams if not u.startswith(("http://", "https://"))]
    if not upstreams or bad:
        fail(f"--upstream {upstream!r}: give one or more http(s):// base URLs, comma-separated")
    if balancer not in BALANCERS:
        fail(f"--balancer {balancer!r}: choose one of {', '.join(BALANCERS)}")
    if log_prompts not in PROMPT_MODES:
        fail(f"--log-prompts {log_prompts!r}: choose one of {', '.join(PROMPT_MODES)}")
    if log_lengths is not None:
        check_output_file(log_lengths, "--log-lengths")
    directory = serving_directory(predictor, scorer)
    front_end = front_end_scorer(directory) if score else None
    quantiles = tuple(PredictorConfig.read(directory).score_quantiles) if score else ()
    app_ = build_router_app(front_end, RouterSettings(upstreams, balancer, max_body_bytes, upstream_timeout_s,
                                                   log_lengths=str(log_lengths) if log_lengths else None,
                                                   log_prompts=log_prompts, score_quantiles=quantiles))
    console.print(f"routing to {', '.join(upstreams)} ({balancer}{'' if score else ', not scoring'}) on http://{host}:{port}")
    uvicorn.run(app_, host=host, port=port, log_level="warning")


@app.command("collect")
def collect_command(
    endpoint: Annotated[str, typer.Option(help="Base URL of an OpenAI-compatible server")],
    model: Annotated[str, typer.Option(help="Model name to request (also written to each line)")],
    prompts: Annotated[Path, typer.Option(help="Text file (one prompt per line) or .jsonl with a \"prompt\" per line")],
    out: Annotated[Path, typer.Option(help="Length log to append to (input to pars train --data / --init-from)")],
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once")] = 8,
    max_tokens: Annotated[Optional[int], typer.Option(min=1, help="Cap on each answer [default: the server's]")] = None,
    api_key: Annotated[Optional[str], typer.Option(envvar="OPENAI_API_KEY", help="Bearer token")] = None,
    log_prompts: Annotated[str, typer.Option(help="text | hash")] = "text",
) -> None:
    """Measure an endpoint's response lengths for your prompts and append them to a length log."""
    import asyncio

    from pars.data import DataError
    from pars.route.collect import collect, read_prompts
    from pars.route.length_log import PROMPT_MODES, LengthLog

    if not endpoint.startswith(("http://", "https://")):
        fail(f"--endpoint {endpoint!r}: give an http(s):// base URL")
    if log_prompts not in PROMPT_MODES:
        fail(f"--log-prompts {log_prompts!r}: choose one of {', '.join(PROMPT_MODES)}")
    check_output_file(out, "--out")
    try:
        texts = read_prompts(prompts)
    except DataError as err:
        fail(str(err))
    if not texts:
        fail(f"--prompts {prompts}: no prompts")
    with progress_bar() as progress:
        task = progress.add_task("collecting", total=len(texts), info="")
        result = asyncio.run(collect(endpoint, model, texts, LengthLog(out, log_prompts), concurrency, max_tokens,
                                     api_key, on_done=lambda: progress.advance(task)))
    failures = ", ".join(f"{reason}: {n}" for reason, n in sorted(result.failed.items()))
    console.print(f"{result.written} lengths appended to {out}" + (f"; failed {failures}" if failures else ""))
    if not result.written:
        raise typer.Exit(code=2)


@bench_app.command("rank")
def bench_rank_command(
    quick: Annotated[bool, typer.Option(help="Frozen encoder, one seed, no 256-token run (under 10 minutes)")] = False,
    out: Annotated[Path, typer.Option(help="Where summary.md/json, plots and the run cache go")] = Path("results/ranking"),
    data: Annotated[Optional[Path], typer.Option(help="Bundled data dir or a JSONL file [default: data/]")] = None,
    report_only: Annotated[bool, typer.Option(help="Rebuild the report from cached runs; train nothing")] = False,
) -> None:
    """Rank test prompts with PARS (margin) against listmle, pointwise and classify, references, ablations, cross-model."""
    from pars.bench.ranking import build_plan, load_bench_data, run_plan
    from pars.bench.ranking_report import summarise, write_report
    from pars.data import DataError
    from pars.paths import PROJECT_ROOT
    from pars.predictor import EncoderNotFound

    check_output_dir(out, "--out")
    try:
        bench = load_bench_data(str(data) if data else None)
        plan = build_plan(quick, bench.models)
        with progress_bar() as progress:
            task = progress.add_task("ranking runs", total=len({e.spec for e in plan}), info="")

            def on_run(done: int, total: int, spec, cached: bool) -> None:
                progress.update(task, completed=done, info=f"{spec.key}{' (cached)' if cached else ''}")

            outcomes = run_plan(plan, bench, out, None if quick or data else PROJECT_ROOT / "artifacts", on_run,
                                train_missing=not report_only)
    except (DataError, EncoderNotFound, ValueError) as err:
        fail(str(err))
    summary = summarise(plan, outcomes, bench, settings={"quick": quick})
    for path in write_report(summary, out):
        console.print(f"wrote {path}")
    table = Table(title=f"Kendall tau-b on {summary['settings']['test_prompts']} test prompts (balanced: mean over "
                        "sources of each source's mean over models)")
    for column in ("method", "encoder", "balanced tau (± std)", "mean over models", "pair accuracy", "seeds"):
        table.add_column(column)
    for name, row in summary["methods"].items():
        table.add_row(name, row["encoder"],
                      f"{row['balanced_kendall_tau_mean']:.3f} ± {row['balanced_kendall_tau_std']:.3f}",
                      f"{row['kendall_tau_mean']:.3f} ± {row['kendall_tau_std']:.3f}",
                      f"{row['pairwise_accuracy_mean']:.3f}", str(row["seeds"]))
    for name, value in summary["references"].items():
        table.add_row(f"reference: {name}", "", f"{value:.3f}", "", "", "")
    print_table(table)


@bench_app.command("overhead")
def bench_overhead_command(
    predictor: PredictorOption = None,
    prompts: Annotated[int, typer.Option(min=1, help="Held-out test prompts to time (a seeded sample)")] = 256,
    threads: Annotated[int, typer.Option(min=1, help="Torch, OpenMP and tokenizer threads (predictor and engines)")] = 1,
    passes: Annotated[int, typer.Option(min=1, help="Timed passes per cell; the median is reported")] = 3,
    out: Annotated[Path, typer.Option(help="JSON file: the table and the machine facts")] = Path("results/overhead/scoring.json"),
    engine: Annotated[bool, typer.Option(help="Also time vLLM engine steps, FCFS vs PARS, idle and under load")] = False,
    model: Annotated[Optional[Path], typer.Option(help="Engine model dir for --engine [default: a fresh tiny model]")] = None,
) -> None:
    """What scoring a prompt costs (ms at batch 1, 8, 32) and the test-split Kendall tau, per precision and batching."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # before torch is imported: the engines read it too
    if threads == 1:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # else the Rust tokenizer batches on every core
    import torch

    from pars.bench.overhead import STUDENT_ROW, engine_overhead, footprint, scoring_cost
    from pars.predictor.loading import STUDENT_DIR

    check_output_file(out, "--out")
    if engine:
        check_served_model(model)
    torch.set_num_threads(threads)
    teacher_dir = predictor or default_predictor_dir()
    loaded = load_predictor(teacher_dir)
    student_dir = teacher_dir / STUDENT_DIR
    student = load_predictor(student_dir) if (student_dir / "config.json").is_file() else None
    with console.status("timing") as status:
        result = scoring_cost(loaded, prompts, passes, on_row=lambda name: status.update(f"timing {name}"),
                              student=student)
        status.update("load time and memory")
        result["footprint"] = {"teacher": footprint(teacher_dir),
                               **({"student": footprint(student_dir)} if student is not None else {})}
    before, after = (" / ".join(f"{x:.1f}" for x in result[f"load_average_{k}"]) for k in ("before", "after"))
    table = Table(title=f"Scoring cost, ms per prompt (tokenisation included), {result['threads']} thread(s), "
                        f"{result['prompts']} test prompts; tau on {result['test_prompts']} test prompts; "
                        f"load average {before} -> {after}")
    batchings = list(result["rows"][0]["ms_per_prompt"])
    for column in ("option", *(f"batch {b}" if b.isdigit() else b for b in batchings), "Kendall tau", "tau change",
                   "balanced tau", "load s", "memory MiB"):
        table.add_column(column, justify="left" if column == "option" else "right")
    for row in result["rows"]:
        name = row["option"] + (" (default)" if row["option"] == result["default_option"] else "")
        size = result["footprint"].get("student" if row["option"] == STUDENT_ROW else "teacher")
        table.add_row(name, *(f"{row['ms_per_prompt'][b]:.3f}" for b in batchings), f"{row['kendall_tau']:.4f}",
                      f"{row['tau_change']:+.4f}", f"{row['balanced_tau']:.3f}",
                      f"{size['load_s']:.2f}" if size else "-", f"{size['rss_mib']:.0f}" if size else "-")
    print_table(table)
    if engine:
        result["engine"] = engine_overhead(model, predictor or default_predictor_dir())
        steps = Table(title=f"vLLM engine steps, OMP_NUM_THREADS={threads}")
        columns = list(next(iter(result["engine"].values())))
        for column in ("scenario", *columns):
            steps.add_column(column, justify="left" if column == "scenario" else "right")
        for scenario, values in result["engine"].items():
            steps.add_row(scenario, *(f"{values[c]:.2f}" if isinstance(values[c], float) else str(values[c])
                                      for c in columns))
        print_table(steps)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {out}")


def parse_floats(text: Optional[str]) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip()) if text else ()


@bench_app.command("serve")
def bench_serve_command(
    policies: Annotated[Optional[str], typer.Option(help="Comma-separated: fcfs, pars, oracle, pointwise, listmle, classify, pars-teacher and pars-student (pars forced to one ranker; pars serves the student when --predictor holds one), pars-priority (stock priority scheduling), pars-engine and pars-ahead (diagnostics) [default: fcfs,pars,oracle + baselines with checkpoints]")] = None,
    rates: Annotated[Optional[str], typer.Option(help="Absolute arrival rates, req/s (overrides --loads)")] = None,
    loads: Annotated[str, typer.Option(help="Rates as fractions of the FCFS burst capacity")] = "0.5,0.7,0.85,0.95,1.1",
    burst: Annotated[int, typer.Option(min=0, help="Requests in the burst run that measures FCFS's capacity (0: none; then give --rates)")] = 80,
    extra_bursts: Annotated[Optional[str], typer.Option(help="Comma-separated sizes of more burst runs (e.g. 40)")] = None,
    trace: Annotated[Optional[str], typer.Option(help="azure-conv | azure-code | mooncake-conv instead of Poisson")] = None,
    requests: Annotated[int, typer.Option(min=1, help="Requests per rate run")] = 300,
    duration: Annotated[Optional[float], typer.Option(help="Seconds of arrivals per rate run (overrides --requests)")] = None,
    length_scale: Annotated[float, typer.Option(help="Multiply every response length (keeps their order)")] = 1.0,
    target_model: Annotated[Optional[str], typer.Option(help="Whose true response lengths to replay [default: gpt-3.5-turbo-1106, or the one model in --data]")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Replay your own traffic: a JSONL file as `pars train --data` reads (prompt, response_tokens, optional model) instead of the bundled test split")] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Run everything this many times (fresh engines) and report the spread")] = 1,
    model: Annotated[Optional[Path], typer.Option(help="Served model dir [default: artifacts/tiny-model, built if missing]")] = None,
    max_num_seqs: Annotated[int, typer.Option(min=1, help="vLLM's running batch limit")] = 4,
    kv_cache_gib: Annotated[int, typer.Option(min=1, help="VLLM_CPU_KVCACHE_SPACE")] = 1,
    aging_rate: Annotated[Optional[float], typer.Option(min=0.0, help="Starvation bound: key units per second waited")] = None,
    max_wait_s: Annotated[Optional[float], typer.Option(help="Starvation bound: hard maximum wait, s (> 0; inf: off)")] = None,
    fcfs_wait_factor: Annotated[Optional[float], typer.Option(min=1.0, help="Starvation bound: go first after waiting this many times the estimated FCFS wait")] = None,
    score_budget_ms: Annotated[Optional[float], typer.Option(min=0.0, help="Most an engine step waits for pending scores")] = None,
    pin: Annotated[bool, typer.Option(help="Pin the engine core to its own CPU and the front end (requests, scoring) to the others, as on a GPU server")] = False,
    predictor: PredictorOption = None,
    seed: Annotated[int, typer.Option(help="Seed of prompt choice and arrivals")] = 0,
    quick: Annotated[bool, typer.Option(help="fcfs, pars, oracle only; burst 40 + one Poisson run at 0.95 load, 80 requests (a few minutes)")] = False,
    out: Annotated[Path, typer.Option(help="Where summary.md/json, requests.jsonl and plots go")] = Path("results/serving"),
) -> None:
    """Replay test prompts on a real vLLM engine under each policy; latency, throughput, ratios vs FCFS and oracle."""
    from dataclasses import replace

    from pars.bench.serving import (BenchmarkError, EngineSettings, ensure_model, resolve_policies,
                                    run_serving_benchmark, split_of, workload_pool)
    from pars.data import DataError
    from pars.predictor import CheckpointError
    from pars.bench.serving_report import SHORT_COLUMNS, settings_dict, table_cells, write_outputs
    from pars.bench.traces import TRACES
    from pars.bench.workload import QUICK_PLAN, ArrivalPlan
    from pars.paths import PROJECT_ROOT

    for option, value in (("--duration", duration), ("--max-wait-s", max_wait_s)):
        check_positive(option, value)
    if trace is not None and trace not in TRACES:  # else it fails only after the burst run, minutes in
        fail(f"--trace {trace!r}: choose one of {', '.join(sorted(TRACES))}")
    started = start_served_benchmark(length_scale, out, model)
    try:
        specs = resolve_policies(policies.split(",") if policies else (["pars", "oracle"] if quick else None), predictor)
        check_checkpoints(s.predictor for s in specs if s.predictor is not None)
        plan = ArrivalPlan(requests, burst, parse_floats(loads), parse_floats(rates), duration, trace, length_scale, seed,
                           tuple(int(n) for n in parse_floats(extra_bursts)))
        plan = replace(plan, **QUICK_PLAN) if quick else plan
        engine = EngineSettings(str(ensure_model(model or PROJECT_ROOT / "artifacts" / "tiny-model")), max_num_seqs,
                                kv_cache_gib=kv_cache_gib, aging_rate=aging_rate, max_wait_s=max_wait_s,
                                fcfs_wait_factor=fcfs_wait_factor, score_budget_ms=score_budget_ms, pin=pin)
        split = split_of(next((s.predictor for s in specs if s.name == "pars"), None))
        pool, target, prompts = workload_pool(data, target_model, split)
        result = run_serving_benchmark(engine, specs, plan, pool, repeats)
    except (BenchmarkError, CheckpointError, DataError, ValueError) as err:
        fail(str(err))
    rows = write_outputs(out, settings_dict(engine, plan, target, prompts, result, started), result)
    ordered = sorted(rows, key=lambda r: (r["repeat"], r["arrival"] != "burst", r["rate"] or 0.0))
    print_rows(f"Serving latency, length scale {plan.length_scale} ({out / 'summary.md'})",
               [title for _, title, _ in SHORT_COLUMNS], 3, [table_cells(row, SHORT_COLUMNS) for row in ordered])


@bench_app.command("http")
def bench_http_command(
    predictor: PredictorOption = None,
    model: Annotated[Optional[Path], typer.Option(help="Served model dir [default: artifacts/tiny-model, built if missing]")] = None,
    requests: Annotated[int, typer.Option(min=1, help="Streamed chat requests per burst")] = 80,
    length_scale: Annotated[float, typer.Option(help="max_tokens = true length x this (ignore_eos)")] = 1.0,
    setups: Annotated[str, typer.Option(help="Comma-separated, run in this order: fcfs, pars, priority")] = "fcfs,pars,priority",
    target_model: Annotated[str, typer.Option(help="Whose true response lengths to replay")] = "gpt-3.5-turbo-1106",
    max_num_seqs: Annotated[int, typer.Option(min=1, help="vLLM's running batch limit")] = 4,
    stream_interval: Annotated[int, typer.Option(min=1, help="vLLM --stream-interval: tokens per streamed event after the first")] = 8,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of each server (one at a time, on 127.0.0.1)")] = 8000,
    seed: Annotated[int, typer.Option(help="Seed of the prompt choice")] = 0,
    out: Annotated[Path, typer.Option(help="Where summary.md/json, requests.jsonl and server logs go")] = Path("results/http"),
) -> None:
    """Streamed chat bursts over HTTP to `pars serve`, per setup, with and without a shared system prompt."""
    from pars.bench.http import ServerSettings, run_http_benchmark
    from pars.bench.http_report import COLUMNS, cells, settings_dict, write_outputs
    from pars.bench.serving import BenchmarkError, ensure_model
    from pars.paths import PROJECT_ROOT
    from pars.predictor import CheckpointError
    from pars.predictor.model import check_checkpoint

    started = start_served_benchmark(length_scale, out, model)
    directory = predictor or default_predictor_dir()
    try:
        check_checkpoint(directory)
        settings = ServerSettings(str(ensure_model(model or PROJECT_ROOT / "artifacts" / "tiny-model")), str(directory),
                                  port=port, max_num_seqs=max_num_seqs, stream_interval=stream_interval)
        names = [s.strip() for s in setups.split(",") if s.strip()]
        result = run_http_benchmark(settings, names, requests, length_scale, target_model, out, seed)
    except (BenchmarkError, CheckpointError, ValueError) as err:
        fail(str(err))
    rows = write_outputs(out, settings_dict(settings, result, target_model, length_scale, seed, started), result)
    print_rows(f"HTTP burst of {requests}, length scale {length_scale} ({out / 'summary.md'})",
               [title for _, title, _ in COLUMNS], 2, [cells(row) for row in rows])


@bench_app.command("route")
def bench_route_command(
    predictor: PredictorOption = None,
    model: Annotated[Optional[Path], typer.Option(help="Served model dir [default: artifacts/tiny-model, built if missing]")] = None,
    burst: Annotated[int, typer.Option(min=0, help="Requests in the burst (0: none; then give --rates)")] = 64,
    requests: Annotated[int, typer.Option(min=2, help="Requests per Poisson load")] = 160,
    loads: Annotated[str, typer.Option(help="Poisson rates as fractions of FCFS round-robin's burst throughput")] = "0.9",
    rates: Annotated[Optional[str], typer.Option(help="Absolute Poisson rates, req/s (overrides --loads)")] = None,
    length_scale: Annotated[float, typer.Option(help="max_tokens = true length x this (ignore_eos)")] = 1.0,
    repeats: Annotated[int, typer.Option(min=1, help="Times every setup replays every workload")] = 2,
    setups: Annotated[Optional[str], typer.Option(help="Comma-separated, fcfs-round-robin first [default: all]")] = None,
    target_model: Annotated[str, typer.Option(help="Whose true response lengths to replay")] = "gpt-3.5-turbo-1106",
    max_num_seqs: Annotated[int, typer.Option(min=1, help="vLLM's running batch limit, per replica")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the prompt choice and arrivals")] = 0,
    out: Annotated[Path, typer.Option(help="Where summary.md/json, requests.jsonl, routing.png and logs go")] = Path("results/route/comparison"),
) -> None:
    """Two stock vLLM replicas behind `pars route`: FCFS round-robin vs PARS priority with each balancer."""
    from pars.bench.routing import SETUPS as ROUTER_SETUPS
    from pars.bench.routing import ReplicaSettings, run_routing_benchmark
    from pars.bench.routing_report import settings_dict, write_outputs
    from pars.bench.serving import BenchmarkError, ensure_model
    from pars.bench.workload import ArrivalPlan
    from pars.paths import PROJECT_ROOT

    started = start_served_benchmark(length_scale, out, model)
    directory = predictor or default_predictor_dir()
    check_checkpoints([directory])
    names = [s.strip() for s in setups.split(",") if s.strip()] if setups else list(ROUTER_SETUPS)
    try:
        plan = ArrivalPlan(requests, burst, parse_floats(loads) if rates is None else (), parse_floats(rates),
                           length_scale=length_scale, seed=seed)
        replicas = ReplicaSettings(str(ensure_model(model or PROJECT_ROOT / "artifacts" / "tiny-model")),
                                   str(directory), max_num_seqs=max_num_seqs)
        result = run_routing_benchmark(replicas, names, plan, repeats, target_model, out)
    except (BenchmarkError, ValueError) as err:
        fail(str(err))
    rows = write_outputs(out, settings_dict(replicas, plan, result, repeats, started), result)
    print_rows(f"Routing: 2 replicas, length scale {length_scale} ({out / 'summary.md'})",
               ["setup", "repeat", "workload", "mean s", "P99 s", "mean/FCFS", "P99/FCFS"], 3,
               [[r["setup"], str(r["repeat"]), r["workload"], f"{r['mean_s']:.2f}", f"{r['p99_s']:.2f}",
                 f"{r['mean_vs_fcfs']:.2f}", f"{r['p99_vs_fcfs']:.2f}"] for r in rows])


# --- pars bench calibrate / pars bench sim (issue 12: the simulator, calibrated and validated) ---
@bench_app.command("calibrate")
def bench_calibrate_command(
    out: Annotated[Path, typer.Option(help="Profile JSON to write")],
    model: Annotated[Optional[Path], typer.Option(help="Served model dir [default: artifacts/tiny-model, built if missing]")] = None,
    max_num_seqs: Annotated[int, typer.Option(min=2, help="vLLM's running batch limit (1 crashes the CPU build)")] = 4,
    max_model_len: Annotated[int, typer.Option(min=64, help="vLLM's max_model_len")] = 4096,
    rounds: Annotated[int, typer.Option(min=2, help="generate() calls of 1..2 x max_num_seqs requests")] = 48,
    max_prompt: Annotated[int, typer.Option(min=32, help="Longest prompt, tokens")] = 2000,
    name: Annotated[Optional[str], typer.Option(help="Profile name [default: cpu-<model dir name>]")] = None,
) -> None:
    """Time every step of the real vLLM engine on varied batches and fit the simulator's step-time profile."""
    from pars.bench.calibrate import CalibrationPlan, calibrate
    from pars.bench.serving import ensure_model
    from pars.paths import PROJECT_ROOT

    check_served_model(model)
    check_output_file(out, "--out")
    if max_prompt + 200 > max_model_len:
        fail(f"--max-prompt {max_prompt} leaves no room for outputs within --max-model-len {max_model_len}")
    model_dir = ensure_model(model or PROJECT_ROOT / "artifacts" / "tiny-model")
    plan = CalibrationPlan(rounds=rounds, max_num_seqs=max_num_seqs, max_prompt=max_prompt)
    with progress_bar() as progress:
        task = progress.add_task("calibrating", total=rounds, info="starting the engine")
        try:
            profile, steps = calibrate(model_dir, plan, max_model_len, name,
                                       on_batch=lambda done: progress.update(task, completed=done, info=""))
        except (RuntimeError, ValueError) as err:
            fail(str(err))
    out.parent.mkdir(parents=True, exist_ok=True)
    profile.save(out)
    quality = profile.quality
    print_rows(f"Step profile {profile.name} ({len(steps)} steps) -> {out}", ["term", "value"], 1, [
        ["base", f"{profile.base_s * 1e3:.4f} ms"], ["per prefill token", f"{profile.per_prefill_token_s * 1e6:.4f} us"],
        ["per decode seq", f"{profile.per_decode_seq_s * 1e6:.3f} us"], ["per KV token", f"{profile.per_kv_token_s * 1e9:.3f} ns"],
        ["R^2", f"{quality.r2:.3f}"], ["mean relative error", f"{quality.mean_relative_error:.3f}"]])
    console.print(profile.source)


@bench_app.command("sim")
def bench_sim_command(
    validate: Annotated[bool, typer.Option("--validate", help="Replay a real `pars bench serve` run and compare")] = False,
    study: Annotated[str, typer.Option(help="replay | bound (starvation rules) | quality (ranker tau) | scale (1M requests)")] = "replay",
    profile: Annotated[str, typer.Option(help="Shipped profile name (cpu-tiny-llama, h100-llama-3.1-8b) or a profile JSON path")] = "cpu-tiny-llama",
    policies: Annotated[str, typer.Option(help="Comma-separated: fcfs, pars, oracle, margin, listmle, pointwise, classify")] = "fcfs,pars,oracle",
    trace: Annotated[Optional[str], typer.Option(help="azure-conv | azure-code | mooncake-conv: the whole trace as recorded (or scaled to --loads)")] = None,
    loads: Annotated[Optional[str], typer.Option(help="Poisson (or trace) rates as fractions of FCFS capacity [default: 0.5,0.8,1,1.2,1.5; none with --trace]")] = None,
    burst: Annotated[int, typer.Option(min=0, help="Requests in the burst run (0: none)")] = 200,
    requests: Annotated[int, typer.Option(min=2, help="Requests per Poisson load")] = 2000,
    replicas: Annotated[int, typer.Option(min=1, help="Replicas behind the router's balancer")] = 1,
    balancer: Annotated[str, typer.Option(help="least-work | least-requests | round-robin (with --replicas > 1)")] = "least-work",
    max_num_seqs: Annotated[Optional[int], typer.Option(min=1, help="vLLM's running batch limit [default: the profile's engine]")] = None,
    kv_blocks: Annotated[Optional[int], typer.Option(min=1, help="KV cache blocks of 16 tokens [default: the profile's engine]")] = None,
    length_scale: Annotated[float, typer.Option(help="Output tokens = true length x this")] = 1.0,
    scale_requests: Annotated[int, typer.Option(min=1, help="Requests of the scale check")] = 1_000_000,
    predictor: PredictorOption = None,
    seed: Annotated[int, typer.Option(help="Seed of prompts and arrivals")] = 0,
    requests_file: Annotated[Path, typer.Option(help="--validate: requests.jsonl of the run (summary.json beside it)")] = Path("results/serving/requests.jsonl"),
    scoring_ms: Annotated[float, typer.Option(min=0.0, help="Front-end scoring per predicted request, ms (FIFO scorer)")] = 0.0,
    max_num_batched_tokens: Annotated[Optional[int], typer.Option(min=1, help="--validate: vLLM's token budget [default: the run's max_model_len]")] = None,
    out: Annotated[Path, typer.Option(help="Where the summary, tables and plots go")] = Path("results/sim"),
) -> None:
    """Simulate vLLM continuous batching (labelled simulated): policies across load or a whole trace, the
    starvation bound, ranker quality, scale; --validate replays a served run per policy and workload."""
    check_output_dir(out, "--out")
    if not validate:
        _run_sim_study(study, profile, policies, trace, loads, burst, requests, replicas, balancer, max_num_seqs,
                       kv_blocks, length_scale, scale_requests, predictor, seed, scoring_ms, out)
        return
    from pars.bench.sim_validation import TOLERANCE, validate as run_validation, write_validation
    from pars.sim import StepProfile

    try:
        step_profile = StepProfile.named(profile)
        result = run_validation(requests_file.parent / "summary.json", requests_file, step_profile, scoring_ms,
                                max_num_batched_tokens)
    except ValueError as err:  # ValidationError, bad profile
        fail(str(err))
    path = write_validation(result, out)
    mark = {True: "yes", False: "no"}
    print_rows(f"Simulated ({step_profile.name}) vs real end-to-end latency; within = |sim/real - 1| <= {TOLERANCE:.0%} ({path})",
               ["policy", "repeat", "workload", "real mean s", "sim mean s", "sim/real", "within", "real P90 s",
                "sim P90 s", "sim/real P90", "within P90"], 3,
               [[r["policy"], str(r["repeat"]), r["workload"], f"{r['real_mean_s']:.2f}", f"{r['sim_mean_s']:.2f}",
                 f"{r['mean_ratio']:.2f}", mark[r["mean_within"]], f"{r['real_p90_s']:.2f}", f"{r['sim_p90_s']:.2f}",
                 f"{r['p90_ratio']:.2f}", mark[r["p90_within"]]] for r in result["rows"]])
    for ranking in result["rankings"]:
        console.print(f"repeat {ranking['repeat']}, {ranking['workload']}: real {' < '.join(ranking['real_order'])}; "
                      f"sim {' < '.join(ranking['sim_order'])} -> {'agree' if ranking['agree'] else 'DISAGREE'}")
    if result["skipped_policies"]:
        console.print(f"not simulated: {', '.join(result['skipped_policies'])}")


def _run_sim_study(study: str, profile: str, policies: str, trace: str | None, loads: str | None, burst: int,
                   requests: int, replicas: int, balancer: str, max_num_seqs: int | None, kv_blocks: int | None,
                   length_scale: float, scale_requests: int, predictor: Path | None, seed: int, scoring_ms: float,
                   out: Path) -> None:
    from pars.bench.serving_report import SHORT_COLUMNS, table_cells
    from pars.bench.sim_runs import SimOptions, run_sim
    from pars.bench.sim_study import SimArrivals

    check_positive("--length-scale", length_scale)
    names = tuple(p.strip() for p in policies.split(",") if p.strip())
    if "fcfs" not in names:
        fail("--policies must include fcfs: every ratio is to FCFS on the same requests")
    default_loads = () if trace else (0.5, 0.8, 1.0, 1.2, 1.5)
    directory = predictor or (default_predictor_dir() if "pars" in names else None)  # its split picks the prompts
    if directory is not None:
        check_checkpoints([directory])
    try:
        plan = SimArrivals(requests, burst, parse_floats(loads) if loads else default_loads, trace, length_scale, seed)
        options = SimOptions(profile, study, names, plan, replicas, balancer, max_num_seqs, kv_blocks, scoring_ms,
                             directory, None, scale_requests)
        with console.status(f"simulating ({study})") as status:
            rows = run_sim(options, out, on_progress=lambda what: status.update(f"simulating: {what}"))
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))
    if study == "replay":
        print_rows(f"SIMULATED ({profile}): {out / 'summary.md'}", [t for _, t, _ in SHORT_COLUMNS], 3,
                   [table_cells(r, SHORT_COLUMNS) for r in rows])
    else:
        keys = list(rows[0])
        print_rows(f"SIMULATED ({profile}), study {study}: {out / (study + '.md')}", keys, 2,
                   [[f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in keys] for r in rows])


if __name__ == "__main__":
    app()
