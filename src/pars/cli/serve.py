"""`pars make-tiny-model`, `pars serve`, `pars score-server` and `pars collect`: serving."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from pars.cli.checks import check_checkpoints, check_choice, check_output_dir, check_output_file
from pars.cli.common import PredictorOption, ScorerOption, app, console, fail, progress_bar
from pars.paths import default_predictor_dir

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
    learn: Annotated[Optional[Path], typer.Option(help="Learn the served model's lengths: log every finished "
                                                       "request in DIR and refit the student from it")] = None,
    learn_every: Annotated[int, typer.Option(min=10, help="Refit after this many new logged lengths")] = 200,
    learn_store: Annotated[str, typer.Option(help="text: log the user's text; embeddings: only the student's "
                                                  "features (no prompt kept)")] = "text",
) -> None:
    """Start vLLM's OpenAI-compatible server; requests are scored in its front end, ordered in the engine.

    A `--additional-config` among the vLLM args is merged with PARS's: its `pars` keys win, and a
    `pars.predictor` other than --predictor is an error. With --learn DIR the front end logs each finished
    request's length in DIR and refits the distilled student in the background (docs/learning.md)."""
    from pars.integrations.vllm.policies import get_policy
    from pars.integrations.vllm.serve import exec_server, serve_argv, split_additional_config
    from pars.integrations.vllm.versions import installed_vllm, unsupported_reason
    from pars.predictor import CheckpointError
    from pars.predictor.loading import serving_checkpoint
    from pars.predictor.checkpoint import check_checkpoint

    if reason := unsupported_reason(installed_vllm()):
        fail(reason)
    check_choice("--learn-store", learn_store, LEARN_STORES)
    try:
        chosen = get_policy(policy)
        user_pars = split_additional_config(ctx.args)[0].get("pars", {})
        if chosen.uses_predictor and not (isinstance(user_pars, dict) and "predictor" in user_pars):
            # the student inside the checkpoint, by default (a pars.predictor the user gave is served as given)
            predictor = serving_checkpoint(predictor or chosen.default_predictor_dir(), scorer)
        learn_env: dict[str, str] = {}
        if learn is not None:
            predictor, learn_env = learning_setup(learn, predictor, chosen.uses_predictor, learn_every, learn_store)
        argv, env = serve_argv(model, policy, predictor, host, port, max_num_seqs, ctx.args, mode)
        env.update(learn_env)
        if "PARS_PREDICTOR" in env:
            check_checkpoint(env["PARS_PREDICTOR"])
    except (ValueError, CheckpointError) as err:
        fail(str(err))
    exec_server(argv, env)


LEARN_STORES = ("text", "embeddings")


def learning_setup(learn: Path, predictor: Path | None, uses_predictor: bool, every: int,
                   store: str) -> tuple[Path, dict[str, str]]:
    """The checkpoint to serve (LEARN/current) and the front end's learning variables; ValueError or
    CheckpointError (one line) if this server cannot learn."""
    from pars.learning.learner import LEARN_DIR_ENV, LEARN_EVERY_ENV, LEARN_STORE_ENV
    from pars.learning.state import LearnDir

    if not uses_predictor or predictor is None:
        raise ValueError("--learn refits the served student: use a policy that scores with a predictor (pars)")
    current = LearnDir(learn).prepare(predictor)
    return current, {LEARN_DIR_ENV: str(learn), LEARN_EVERY_ENV: str(every), LEARN_STORE_ENV: store}


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
    """Serve ranker scores, priorities and ranks over HTTP (/score, /score_batch, /health, /metrics) for a
    router or gateway (vllm-router, an llm-d endpoint picker) in front of vLLM replicas."""
    import uvicorn

    from pars.predictor.config import PredictorConfig
    from pars.route.score_server import build_app

    directory = serving_directory(predictor, scorer)
    front_end = front_end_scorer(directory)
    app_ = build_app(front_end, PredictorConfig.read(directory).score_quantiles, max_body_bytes, max_batch_items)
    console.print(f"scoring with {directory} on http://{host}:{port}")
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
    from pars.learning.length_log import LengthLog

    if not endpoint.startswith(("http://", "https://")):
        fail(f"--endpoint {endpoint!r}: give an http(s):// base URL")
    check_choice("--log-prompts", log_prompts, ("text", "hash"))
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
