"""A ranker checkpoint's files on disk: which file holds what, and the cheap check that they are all there.

The layout follows Hugging Face's convention, so the directory is also a plain encoder model that
`transformers.AutoModel.from_pretrained(DIR)` opens: `config.json` is the encoder's Hugging Face config and
`model.safetensors` its weights under their Hugging Face names, with the tokenizer files beside them. PARS's
own settings (a `PredictorConfig`) live in `pars_config.json` and the ranking head in `head.safetensors`.
A distilled student (kind "static") is no Hugging Face model: `pars_config.json`, `model.safetensors` (its
tables) and `vocabulary.json`.

Checkpoints saved before 2026-12-06 (`LEGACY`: PARS's settings in `config.json`, the encoder's config in
`encoder_config.json`, encoder and head weights together in `model.safetensors`) still load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from safetensors import SafetensorError, safe_open


class CheckpointError(RuntimeError):
    """A predictor checkpoint is missing or unreadable; the message says what to do."""


CHECKPOINT_HINT = "train one with `pars train --out DIR` (or `make demo`) or pass --predictor DIR"

SETTINGS_FILE = "pars_config.json"  # PARS's settings, every kind
HF_CONFIG_FILE = "config.json"  # the encoder's Hugging Face config
WEIGHTS_FILE = "model.safetensors"  # the encoder's weights (Hugging Face names), or a student's tables
HEAD_FILE = "head.safetensors"  # the ranking head on top of the encoder
VOCABULARY_FILE = "vocabulary.json"  # a student's word list (`pars.predictor.words`)
KINDS = ("encoder", "static")  # a fine-tuned encoder (`pars train`) or a distilled student (`pars distill`)


@dataclass(frozen=True)
class Layout:
    """Where a checkpoint keeps each part."""

    settings: str  # PARS's settings
    encoder_config: str  # the encoder's Hugging Face config (kind "encoder")
    head: str | None  # the head's weights; None: in WEIGHTS_FILE beside the encoder's, prefixed "encoder."

    def files(self, kind: str) -> tuple[str, ...]:
        """The files a checkpoint of `kind` must hold, besides its settings."""
        if kind == "static":
            return VOCABULARY_FILE, WEIGHTS_FILE
        return tuple(name for name in (self.encoder_config, WEIGHTS_FILE, self.head) if name)


CURRENT = Layout(settings=SETTINGS_FILE, encoder_config=HF_CONFIG_FILE, head=HEAD_FILE)
LEGACY = Layout(settings="config.json", encoder_config="encoder_config.json", head=None)


def layout_of(directory: str | Path) -> Layout:
    """The layout the checkpoint at `directory` was saved in; `CheckpointError` where it holds none."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"no predictor checkpoint at {directory}: {CHECKPOINT_HINT}")
    if (directory / SETTINGS_FILE).is_file():
        return CURRENT
    if (directory / LEGACY.settings).is_file():
        if "model_type" in read_json_object(directory, LEGACY.settings):  # a plain Hugging Face model
            raise CheckpointError(f"{directory} is a Hugging Face model, not a PARS checkpoint (no {SETTINGS_FILE}): "
                                  f"{CHECKPOINT_HINT}")
        return LEGACY
    raise CheckpointError(f"checkpoint at {directory} has no {SETTINGS_FILE}: {CHECKPOINT_HINT}")


def holds_checkpoint(directory: str | Path) -> bool:
    """Whether `directory` holds a checkpoint's settings (not whether the rest is sound: `check_checkpoint`)."""
    try:
        layout_of(directory)
    except CheckpointError:
        return False
    return True


def read_settings(directory: str | Path) -> dict:
    """The checkpoint's PARS settings as saved (a `PredictorConfig`'s fields)."""
    return read_json_object(Path(directory), layout_of(directory).settings)


def write_settings(directory: Path, settings: dict) -> None:
    (directory / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")


def check_checkpoint(directory: str | Path) -> Path:
    """The directory, if it holds a checkpoint's files for its kind; else `CheckpointError`.

    Cheap (milliseconds): the JSON files are parsed and the weights' headers are read, no weights, so commands
    that hand the checkpoint to a server or a long benchmark fail before that work, not inside it.
    """
    directory = Path(directory)
    layout = layout_of(directory)
    kind = read_json_object(directory, layout.settings).get("kind", "encoder")
    if kind not in KINDS:
        raise CheckpointError(f"checkpoint at {directory} is of unknown kind {kind!r} (known: {', '.join(KINDS)}): "
                              f"{CHECKPOINT_HINT}")
    files = layout.files(kind)
    for name in files:
        if not (directory / name).is_file():
            raise CheckpointError(f"checkpoint at {directory} has no {name}: {CHECKPOINT_HINT}")
    for name in files:
        if name.endswith(".json"):
            read_json_object(directory, name)
        else:
            try:
                with safe_open(str(directory / name), "pt"):
                    pass
            except (SafetensorError, OSError) as err:
                raise CheckpointError(f"checkpoint at {directory} has corrupt weights in {name} ({err}): "
                                      f"{CHECKPOINT_HINT}") from err
    return directory


def read_json_object(directory: Path, name: str) -> dict:
    """`directory/name` parsed as a JSON object; `CheckpointError` if missing, undecodable or not an object."""
    if not (directory / name).is_file():
        raise CheckpointError(f"checkpoint at {directory} has no {name}: {CHECKPOINT_HINT}")
    try:
        value = json.loads((directory / name).read_text(encoding="utf-8"))
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CheckpointError(f"checkpoint at {directory} has an unreadable {name} ({err}): {CHECKPOINT_HINT}") from err
    return value
