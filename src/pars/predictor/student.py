"""The distilled student: static word vectors and a small head, scored in numpy (made by `pars distill`).

Why it exists: the fine-tuned encoder costs milliseconds of CPU a prompt, taken from the cores the engine
needs. The student splits a prompt into words (`pars.predictor.words`), averages one fixed vector per word
and runs two small matmuls: tens of microseconds, no torch and no threads at scoring time. A checkpoint is a
directory (`pars.predictor.checkpoint`): `pars_config.json` (a `PredictorConfig` with kind "static"),
`model.safetensors`, `vocabulary.json`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from pars.predictor.words import WordVocabulary
from pars.predictor.checkpoint import (CHECKPOINT_HINT, VOCABULARY_FILE, WEIGHTS_FILE, CheckpointError,
                                       check_checkpoint, write_settings)
from pars.predictor.config import LOG_CHARS_MEAN, LOG_CHARS_STD, PredictorConfig, check_prompts

STUDENT_KIND = "static"
# The student reads the first STUDENT_READ_CHARS characters: splitting words is most of its cost, and a
# prompt's first 2,048 characters hold more than its max_length words. Its length feature reads the whole text.
STUDENT_READ_CHARS = 2048
WEIGHT_NAMES = ("embeddings", "hidden_weight", "hidden_bias", "out_weight", "out_bias")


def log_length_feature(prompts: Sequence[str]) -> np.ndarray:
    """[prompts, 1]: the standardised log characters of each whole prompt (as the teacher's head reads them)."""
    chars = np.fromiter((len(p) for p in prompts), dtype=np.float32, count=len(prompts))
    return ((np.log1p(chars) - LOG_CHARS_MEAN) / LOG_CHARS_STD)[:, None]


def gelu(x: np.ndarray) -> np.ndarray:
    """The tanh form of GELU, as torch's `approximate="tanh"` (training uses the same, so scores agree)."""
    return 0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))


class StaticStudent:
    """Scores prompts like a `Predictor` (`score(prompts) -> np.ndarray`), from static token vectors.

    Score = out(gelu(hidden([mean of the prompt's token vectors, log length]))). `cheap` tells the front
    end it may score on the event loop itself: no worker thread, no queue, no wait.
    """

    cheap = True

    def __init__(self, config: PredictorConfig, vocabulary: WordVocabulary, weights: dict[str, np.ndarray]) -> None:
        self.config = config
        self.vocabulary = vocabulary
        self.embeddings = np.ascontiguousarray(weights["embeddings"], dtype=np.float32)  # [vocab, dim]
        self.hidden_weight = np.ascontiguousarray(weights["hidden_weight"], dtype=np.float32)  # [dim + 1, hidden]
        self.hidden_bias = weights["hidden_bias"].astype(np.float32)  # [hidden]
        self.out_weight = weights["out_weight"].astype(np.float32)  # [hidden]
        self.out_bias = float(np.asarray(weights["out_bias"]).reshape(-1)[0])

    @property
    def max_length(self) -> int:
        return self.config.max_length

    def token_ids(self, prompts: Sequence[str]) -> list[list[int]]:
        """The rows the student averages: one per word of the prompt's start, at most max_length."""
        return [self.vocabulary.rows(p[:STUDENT_READ_CHARS], self.config.max_length) for p in prompts]

    def pooled(self, prompts: Sequence[str]) -> np.ndarray:
        """[prompts, dim]: the mean token vector of each prompt (zeros for a prompt with no tokens)."""
        pooled = np.zeros((len(prompts), self.embeddings.shape[1]), dtype=np.float32)
        for row, ids in enumerate(self.token_ids(prompts)):
            if ids:
                pooled[row] = self.embeddings[ids].mean(0)
        return pooled

    def features(self, prompts: Sequence[str]) -> np.ndarray:
        """[prompts, dim + 1]: what the head reads (what `pars serve --learn-store embeddings` logs)."""
        return np.concatenate([self.pooled(prompts), log_length_feature(prompts)], 1)

    def score_features(self, features: np.ndarray) -> np.ndarray:
        """The head alone: one float32 score per row of `features`."""
        hidden = gelu(features @ self.hidden_weight + self.hidden_bias)
        return (hidden @ self.out_weight + self.out_bias).astype(np.float32)

    def score(self, prompts: list[str], batch_size: int = 32) -> np.ndarray:  # noqa: ARG002 - Predictor's signature
        """One float32 score per prompt, in input order; batching does not change a score."""
        check_prompts(prompts)
        return self.score_features(self.features(prompts))

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        weights = {"embeddings": self.embeddings, "hidden_weight": self.hidden_weight, "hidden_bias": self.hidden_bias,
                   "out_weight": self.out_weight, "out_bias": np.array([self.out_bias], dtype=np.float32)}
        save_file(weights, str(directory / WEIGHTS_FILE))
        (directory / VOCABULARY_FILE).write_text(json.dumps(self.vocabulary.to_dict()) + "\n")
        write_settings(directory, asdict(self.config))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> StaticStudent:
        """Open a student checkpoint; missing, corrupt or mismatched files raise `CheckpointError`."""
        directory = check_checkpoint(directory)
        config = PredictorConfig.read(directory)
        if config.kind != STUDENT_KIND:
            raise CheckpointError(f"checkpoint at {directory} is a {config.kind} ranker, not a distilled student")
        try:
            vocabulary = WordVocabulary.from_dict(json.loads((directory / VOCABULARY_FILE).read_text(encoding="utf-8")))
        except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise CheckpointError(f"checkpoint at {directory} has an unreadable {VOCABULARY_FILE} ({err}): "
                                  f"{CHECKPOINT_HINT}") from err
        try:
            weights = load_file(str(directory / WEIGHTS_FILE))
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"checkpoint at {directory} has corrupt weights in {WEIGHTS_FILE} ({err}): "
                                  f"{CHECKPOINT_HINT}") from err
        check_student_weights(directory, weights, vocabulary.size)
        return cls(config, vocabulary, weights)


def check_student_weights(directory: Path, weights: dict[str, np.ndarray], vocab_size: int) -> None:
    """`CheckpointError` unless the weights have the student's names and consistent shapes."""
    missing = [name for name in WEIGHT_NAMES if name not in weights]
    if missing:
        raise CheckpointError(f"checkpoint at {directory} lacks student weights {', '.join(missing)}: {CHECKPOINT_HINT}")
    vocab, dim = weights["embeddings"].shape
    hidden = weights["hidden_bias"].shape[0]
    shapes_agree = (vocab == vocab_size and weights["hidden_weight"].shape == (dim + 1, hidden)
                    and weights["out_weight"].shape == (hidden,))
    if not shapes_agree:
        raise CheckpointError(f"checkpoint at {directory} has student weights of mismatched shapes "
                              f"(table of {vocab} rows for a vocabulary of {vocab_size}, hidden "
                              f"{weights['hidden_weight'].shape}, out {weights['out_weight'].shape}): {CHECKPOINT_HINT}")
