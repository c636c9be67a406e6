"""A ranker checkpoint's settings (`pars_config.json`) and the input rules every ranker shares, without torch or
transformers: what the distilled student and the refit worker import instead of the encoder's stack."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pars
from pars.data.splits import PromptSplit
from pars.predictor.checkpoint import CHECKPOINT_HINT, KINDS, CheckpointError, read_settings

POOLINGS = ("mean", "cls")
TRUNCATIONS = ("head", "head-tail")  # which max_length tokens the encoder reads of a longer prompt (`read_ids`)
# The length feature is log(1 + characters), centred and scaled by its mean and std over the bundled
# training prompts, so it starts on the pooled vectors' scale.
LOG_CHARS_MEAN, LOG_CHARS_STD = 5.3, 1.3


@dataclass
class PredictorConfig:
    kind: str = "encoder"  # one of KINDS; "encoder" for checkpoints saved before students existed
    encoder: str = "all-MiniLM-L6-v2"
    pooling: str = "mean"
    max_length: int = 128
    truncation: str = "head"  # one of TRUNCATIONS; "head" for checkpoints saved before it existed
    head_outputs: int = 1  # 1: the score itself; K > 1: logits over length buckets (classify loss)
    length_feature: bool = False  # the head also reads the prompt's length (`length_feature`); off before it existed
    bucket_edges: list[float] = field(default_factory=list)  # token edges of the buckets when head_outputs > 1
    training: dict = field(default_factory=dict)  # loss, margin, threshold, labels, models, split, fingerprint
    # the ranker's scores at 0 %, 1 %, ..., 100 % of held-out prompts: where a score ranks, from the first
    # request on (pars score-server's rank); empty for checkpoints trained before it was recorded
    score_quantiles: list[float] = field(default_factory=list)
    version: str = pars.__version__

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        check_truncation(self.truncation)  # here, so a bad checkpoint fails at load, not at its first scoring

    @classmethod
    def read(cls, directory: str | Path) -> PredictorConfig:
        """A checkpoint's settings alone, without its weights; `CheckpointError` if missing or unreadable."""
        settings = read_settings(directory)
        try:
            return cls(**settings)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"checkpoint at {directory} has an unreadable config ({err}): {CHECKPOINT_HINT}") from err

    @property
    def split(self) -> PromptSplit:
        """The prompt split the ranker was trained with, so held-out prompts stay held out wherever it is
        evaluated or benchmarked; the training default for a checkpoint that did not record one."""
        return PromptSplit(**self.training.get("split", {}))


def check_truncation(truncation: str) -> None:
    """`ValueError` unless `truncation` is one of TRUNCATIONS."""
    if truncation not in TRUNCATIONS:
        raise ValueError(f"truncation must be one of {TRUNCATIONS}, got {truncation!r}")


def check_prompts(prompts: Sequence[str]) -> None:
    """What every ranker's `score` asks of its input: at least one prompt, and only strings."""
    if not prompts:
        raise ValueError("score() needs at least one prompt")
    for prompt in prompts:
        if not isinstance(prompt, str):
            raise TypeError(f"prompts must be strings, got {type(prompt).__name__}")
