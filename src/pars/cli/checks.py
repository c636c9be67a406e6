"""Edge checks of the `pars` commands' arguments, in one place: each runs before any long work (loading data,
training, starting engines) and fails in one line."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from pars.cli.common import fail

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


def check_choice(option: str, value: str, choices: Iterable[str]) -> None:
    """For string options with a fixed set of values (typer's enums would change the options' types)."""
    choices = list(choices)
    if value not in choices:
        fail(f"{option} {value!r}: choose one of {', '.join(choices)}")


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
    from pars.predictor.checkpoint import check_checkpoint

    for directory in directories:
        try:
            check_checkpoint(directory)
        except CheckpointError as err:
            fail(str(err))


def check_train_options(out: Path, encoder: str | None, max_length: int, truncation: str, pooling: str, label: str,
                        lr: float) -> None:
    """What `pars train` can check before it loads data or an encoder (TrainSettings checks the rest)."""
    from pars.data.labels import LABEL_MODES
    from pars.predictor.config import POOLINGS, TRUNCATIONS

    check_output_dir(out, "--out")
    check_choice("--truncation", truncation, TRUNCATIONS)
    check_choice("--pooling", pooling, POOLINGS)
    check_choice("--label", label, LABEL_MODES)
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
