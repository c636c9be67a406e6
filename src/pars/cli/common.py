"""What every `pars` command shares: the Typer apps, the console, option types, output and the one way to fail."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, NoReturn, Optional

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


def parse_floats(text: Optional[str]) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip()) if text else ()
