"""The `pars` command: train, eval and score the ranker (plus engine and benchmark commands)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from pars.paths import default_predictor_dir

app = typer.Typer(help="PARS: prompt-aware request scheduling with a pairwise length ranker.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print and save comparison tables and plots.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
console = Console(stderr=True)
REPORT_MODELS = ("gpt4_1106_preview", "Meta-Llama-3-70B-Instruct", "Mistral-7B-Instruct-v0.2", "vicuna-13b-v1.5",
                 "Sky-T1-32B")

PredictorOption = Annotated[Optional[Path], typer.Option(help="Checkpoint directory [default: artifacts/predictor]")]


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False)])
    for noisy in ("transformers", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console)


def parse_models(models: str) -> tuple[str, ...] | None:
    return None if models.strip().lower() == "all" else tuple(m.strip() for m in models.split(",") if m.strip())


def load_predictor(path: Path | None):
    from pars.predictor import CheckpointError, Predictor

    try:
        return Predictor.load(path or default_predictor_dir())
    except CheckpointError as err:
        fail(str(err))


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
    margin: Annotated[float, typer.Option(help="Margin of the ranking loss")] = 1.0,
    epochs: Annotated[int, typer.Option(help="Passes over the training prompts")] = 3,
    max_length: Annotated[int, typer.Option(help="Prompt tokens the encoder reads")] = 128,
    batch_size: Annotated[int, typer.Option(help="Prompts per step (all kept pairs among them are used)")] = 32,
    lr: Annotated[float, typer.Option(help="Encoder learning rate")] = 2e-5,
    seed: Annotated[int, typer.Option(help="Seed of training and of the prompt split")] = 0,
    extra_prompts: Annotated[int, typer.Option(help="Mix in this many prompts of data/extra_lengths.jsonl.gz")] = 0,
    freeze_encoder: Annotated[bool, typer.Option(help="Train only the head on cached embeddings (fast)")] = False,
    threads: Annotated[Optional[int], typer.Option(help="torch CPU threads")] = None,
) -> None:
    """Train the length ranker and save a checkpoint directory."""
    import torch

    from pars.data import DataError
    from pars.jobs import TrainJob, evaluate_predictor, run_training
    from pars.predictor import EncoderNotFound
    from pars.predictor.training import TrainSettings

    if threads:
        torch.set_num_threads(threads)
    try:
        settings = TrainSettings(loss=loss, margin=margin, threshold=threshold, epochs=epochs, batch_size=batch_size,
                                 lr=lr, seed=seed, freeze_encoder=freeze_encoder)
        job = TrainJob(data=str(data) if data else None, models=parse_models(models), label_mode=label,
                       encoder=encoder, pooling=pooling, max_length=max_length, split_seed=seed,
                       extra_prompts=extra_prompts, settings=settings)
        with progress_bar() as progress:
            task = progress.add_task(f"training ({loss})", total=None, info="")

            def on_step(step: int, total: int, loss_value: float) -> None:
                progress.update(task, completed=step, total=total, info=f"loss {loss_value:.3f}")

            predictor, result, parts = run_training(job, out, on_step)
    except (DataError, EncoderNotFound, ValueError) as err:
        fail(str(err))
    for epoch in result.history:
        console.print(f"epoch {epoch.epoch}: loss {epoch.train_loss:.4f}, validation pair accuracy "
                      f"{epoch.val_pairwise_accuracy:.4f}, pairs kept {epoch.pairs_kept:,} filtered {epoch.pairs_filtered:,}")
    console.print(f"best epoch {result.best_epoch}; checkpoint saved to {out} "
                  f"({predictor.config.training['train_seconds']} s of training)")
    try:
        print_evaluation(evaluate_predictor(predictor, parts["test"], threshold), "held-out test prompts")
    except ValueError as err:
        console.print(f"no held-out evaluation: {err}")


def print_evaluation(evaluation, title: str) -> None:
    table = Table(title=f"Ranking quality on {title}")
    for column in ("model", "Kendall tau-b", "Spearman", "pair accuracy", "n"):
        table.add_column(column, justify="left" if column == "model" else "right")
    overall = evaluation.overall
    table.add_row(f"overall (mean of {overall['models']} models)", f"{overall['kendall_tau']:.3f}",
                  f"{overall['spearman']:.3f}", f"{overall['pairwise_accuracy']:.3f}", str(overall["n"]))
    lower = {m.lower(): m for m in evaluation.per_model}
    shown = [lower[m.lower()] for m in REPORT_MODELS if m.lower() in lower]
    if len(evaluation.per_model) <= 12:
        shown = list(evaluation.per_model)
    for model in shown:
        report = evaluation.per_model[model]
        table.add_row(model, f"{report.kendall_tau:.3f}", f"{report.spearman:.3f}", f"{report.pairwise_accuracy:.3f}",
                      str(report.n))
    Console().print(table)


@app.command("eval")
def eval_command(
    predictor: PredictorOption = None,
    data: Annotated[Optional[Path], typer.Option(help="JSONL file [default: test prompts of the bundled data]")] = None,
    threshold: Annotated[float, typer.Option(help="Length gap of the pairs that pair accuracy counts")] = 0.2,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object to stdout")] = False,
) -> None:
    """Kendall's tau-b, Spearman and pairwise accuracy, overall (mean over models) and per model."""
    from pars.data import DataError
    from pars.jobs import evaluate_predictor, test_records

    loaded = load_predictor(predictor)
    try:
        records = test_records(loaded, str(data) if data else None)
        evaluation = evaluate_predictor(loaded, records, threshold)
    except (DataError, ValueError) as err:
        fail(str(err))
    if as_json:
        sys.stdout.write(json.dumps(evaluation.to_dict()) + "\n")
    else:
        print_evaluation(evaluation, str(data) if data else "held-out test prompts")


@app.command("score")
def score_command(
    prompts: Annotated[Optional[list[str]], typer.Argument(help="Prompts; one per stdin line if none given")] = None,
    predictor: PredictorOption = None,
    batch_size: Annotated[int, typer.Option(help="Prompts per forward pass")] = 32,
) -> None:
    """Print one score per prompt (higher = longer expected response)."""
    texts = list(prompts) if prompts else [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        fail("no prompts given: pass them as arguments or one per line on stdin")
    scores = load_predictor(predictor).score(texts, batch_size=batch_size)
    for score in scores:
        sys.stdout.write(f"{score:.6f}\n")


@app.command("make-tiny-model")
def make_tiny_model_command(out: Annotated[Path, typer.Argument(help="Directory to write the model to")]) -> None:
    """Build a tiny random-weight Llama model + BPE tokenizer that vLLM serves (offline, deterministic)."""
    from pars.integrations.vllm.tiny_model import make_tiny_model

    console.print(f"tiny model written to {make_tiny_model(out)}")


@app.command("serve", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def serve_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model directory or name; further args go to vLLM")],
    policy: Annotated[str, typer.Option(help="fcfs | pars | oracle | pointwise | listmle | classify")] = "pars",
    predictor: PredictorOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    max_num_seqs: Annotated[Optional[int], typer.Option(help="vLLM's running batch limit")] = None,
) -> None:
    """Start vLLM's OpenAI-compatible server with the policy's scheduler."""
    from pars.integrations.vllm.serve import exec_server, serve_argv

    try:
        argv = serve_argv(model, policy, predictor, host, port, max_num_seqs, ctx.args)
    except ValueError as err:
        fail(str(err))
    exec_server(argv)


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
    from pars.paths import PROJECT_ROOT

    bench = load_bench_data(str(data) if data else None)
    plan = build_plan(quick, bench.models)
    with progress_bar() as progress:
        task = progress.add_task("ranking runs", total=len({e.spec for e in plan}), info="")

        def on_run(done: int, total: int, spec, cached: bool) -> None:
            progress.update(task, completed=done, info=f"{spec.key}{' (cached)' if cached else ''}")

        outcomes = run_plan(plan, bench, out, None if quick or data else PROJECT_ROOT / "artifacts", on_run,
                            train_missing=not report_only)
    summary = summarise(plan, outcomes, bench, settings={"quick": quick})
    for path in write_report(summary, out):
        console.print(f"wrote {path}")
    table = Table(title=f"Kendall tau-b on {summary['settings']['test_prompts']} test prompts (mean over models)")
    for column in ("method", "encoder", "tau (± std)", "pair accuracy", "seeds"):
        table.add_column(column)
    for name, row in summary["methods"].items():
        table.add_row(name, row["encoder"], f"{row['kendall_tau_mean']:.3f} ± {row['kendall_tau_std']:.3f}",
                      f"{row['pairwise_accuracy_mean']:.3f}", str(row["seeds"]))
    for name, value in summary["references"].items():
        table.add_row(f"reference: {name}", "", f"{value:.3f}", "", "")
    Console().print(table)


if __name__ == "__main__":
    app()
