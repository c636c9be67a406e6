"""The PARS predictor: encoder + pooling + linear head -> one score per prompt (higher = longer answer).

A checkpoint is a directory anyone can open: `config.json` (ours), `encoder_config.json` (the encoder's
Hugging Face config), `model.safetensors` and the tokenizer files. Never pickle.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer

import pars
from pars.predictor.encoders import offline, resolve_encoder

log = logging.getLogger(__name__)

POOLINGS = ("mean", "cls")
CONFIG_FILE = "config.json"
ENCODER_CONFIG_FILE = "encoder_config.json"
WEIGHTS_FILE = "model.safetensors"


class CheckpointError(RuntimeError):
    """A predictor checkpoint is missing or unreadable; the message says what to do."""


@dataclass
class PredictorConfig:
    encoder: str = "all-MiniLM-L6-v2"
    pooling: str = "mean"
    max_length: int = 128
    head_outputs: int = 1  # 1: the score itself; K > 1: logits over length buckets (classify loss)
    bucket_edges: list[float] = field(default_factory=list)  # token edges of the buckets when head_outputs > 1
    training: dict = field(default_factory=dict)  # loss, margin, threshold, labels, models, split, fingerprint
    version: str = pars.__version__


class LengthRanker(nn.Module):
    """Encoder, pooling and head as one torch module (what training optimises)."""

    def __init__(self, encoder: nn.Module, pooling: str, head_outputs: int) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.encoder = encoder
        self.pooling = pooling
        self.head = nn.Linear(encoder.config.hidden_size, head_outputs)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B, T, H]
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # [B, H]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask))  # [B, head_outputs]


def outputs_to_scores(outputs: torch.Tensor) -> torch.Tensor:
    """[B, K] head outputs -> [B] scores: the output itself, or the expected bucket index for K > 1."""
    if outputs.shape[-1] == 1:
        return outputs[:, 0]
    buckets = torch.arange(outputs.shape[-1], dtype=outputs.dtype, device=outputs.device)
    return (outputs.softmax(-1) * buckets).sum(-1)


class Predictor:
    """Scores prompts with a trained ranker; no training code needed to use it."""

    def __init__(self, config: PredictorConfig, tokenizer, ranker: LengthRanker) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.ranker = ranker.eval()

    @property
    def max_length(self) -> int:
        return self.config.max_length

    @classmethod
    def untrained(cls, encoder: str | None = None, pooling: str = "mean", max_length: int = 128,
                  head_outputs: int = 1, seed: int = 0) -> "Predictor":
        """A real pretrained encoder with a freshly initialised head (the start of training)."""
        offline()
        encoder_dir = resolve_encoder(encoder)
        torch.manual_seed(seed)
        tokenizer = AutoTokenizer.from_pretrained(encoder_dir, local_files_only=True)
        module = AutoModel.from_pretrained(encoder_dir, local_files_only=True)
        config = PredictorConfig(encoder=encoder or "all-MiniLM-L6-v2", pooling=pooling,
                                 max_length=max_length, head_outputs=head_outputs)
        return cls(config, tokenizer, LengthRanker(module, pooling, head_outputs))

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(prompts, padding=True, truncation=True, max_length=self.config.max_length,
                              return_tensors="pt")

    @torch.no_grad()
    def embed(self, prompts: list[str], batch_size: int = 64) -> torch.Tensor:
        """Pooled encoder vectors [prompts, hidden] in input order, batched by length so batches pad little."""
        self.ranker.eval()
        order = np.argsort([len(p) for p in prompts], kind="stable")
        vectors = torch.empty(len(prompts), self.ranker.encoder.config.hidden_size)
        for start in range(0, len(prompts), batch_size):
            idx = order[start:start + batch_size]
            batch = self.tokenize([prompts[i] for i in idx])
            vectors[torch.as_tensor(idx)] = self.ranker.embed(batch["input_ids"], batch["attention_mask"]).float()
        return vectors

    @torch.no_grad()
    def score(self, prompts: list[str], batch_size: int = 32, threads: int | None = None) -> np.ndarray:
        """One float32 score per prompt (see `embed` for the batching)."""
        if not prompts:
            raise ValueError("score() needs at least one prompt")
        for prompt in prompts:
            if not isinstance(prompt, str):
                raise TypeError(f"prompts must be strings, got {type(prompt).__name__}")
        if threads:
            torch.set_num_threads(threads)
        return outputs_to_scores(self.ranker.head(self.embed(prompts, batch_size))).numpy().astype(np.float32)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.contiguous() for k, v in self.ranker.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE))
        (directory / ENCODER_CONFIG_FILE).write_text(self.ranker.encoder.config.to_json_string())
        (directory / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        self.tokenizer.save_pretrained(directory)
        return directory

    @classmethod
    def load(cls, directory: str | Path, threads: int | None = None) -> "Predictor":
        """Open a checkpoint directory; missing or corrupt files raise `CheckpointError`."""
        offline()
        directory = Path(directory)
        hint = "train one with `pars train --out DIR` (or `make demo`) or pass --predictor DIR"
        if not directory.is_dir():
            raise CheckpointError(f"no predictor checkpoint at {directory}: {hint}")
        for name in (CONFIG_FILE, ENCODER_CONFIG_FILE, WEIGHTS_FILE):
            if not (directory / name).is_file():
                raise CheckpointError(f"checkpoint at {directory} has no {name}: {hint}")
        try:
            config = PredictorConfig(**json.loads((directory / CONFIG_FILE).read_text()))
            encoder_config = AutoConfig.for_model(**json.loads((directory / ENCODER_CONFIG_FILE).read_text()))
        except (json.JSONDecodeError, TypeError, ValueError, KeyError) as err:
            raise CheckpointError(f"checkpoint at {directory} has an unreadable config ({err}): {hint}") from err
        try:
            tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        except (OSError, ValueError) as err:
            raise CheckpointError(f"checkpoint at {directory} has no usable tokenizer files ({err}): {hint}") from err
        ranker = LengthRanker(AutoModel.from_config(encoder_config), config.pooling, config.head_outputs)
        try:
            state = load_file(str(directory / WEIGHTS_FILE))
            ranker.load_state_dict(state)
        except (SafetensorError, OSError, RuntimeError) as err:
            raise CheckpointError(f"checkpoint at {directory} has corrupt weights in {WEIGHTS_FILE} ({err}): {hint}") from err
        if threads:
            torch.set_num_threads(threads)
        return cls(config, tokenizer, ranker)
