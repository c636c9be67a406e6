"""The frozen encoder's pooled prompt vectors, computed once: what head-only training stages read every epoch,
what the ranking benchmark shares across its many runs on the same pretrained encoder, and (with a file) what
later runs read back instead of encoding again."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from pars.predictor.model import Predictor


class EmbeddingCache:
    """Pooled fp32 encoder vectors by (what the encoder reads, prompt text); with `path`, also a safetensors file
    of them (keyed by a hash of both) that is read on a miss and written back by `save`.

    Valid for ONE encoder's weights and pooling: share it only between predictors built from the same
    pretrained encoder, and never read it for an encoder that has since been fine-tuned (`disk_cache` names
    the file after the encoder's weights).
    """

    def __init__(self, path: Path | None = None) -> None:
        self._vectors: dict[tuple[str, str], torch.Tensor] = {}
        self.path = path
        self._stored: dict[str, torch.Tensor] = load_file(str(path)) if path is not None and path.is_file() else {}
        self.encoded = 0  # prompts this cache had to encode
        self.encode_seconds = 0.0

    def __len__(self) -> int:
        return len(self._vectors)

    def vectors(self, predictor: Predictor, prompts: Sequence[str]) -> torch.Tensor:
        """[prompts, hidden] in input order; only prompts not seen before (in memory or in the file) are
        encoded, in one `embed` call, so a fresh cache gives exactly the vectors `Predictor.embed` gives."""
        keys = [(predictor.reading, prompt) for prompt in prompts]
        vectors = torch.empty(len(keys), predictor.ranker.encoder.config.hidden_size)
        missing = []
        for i, key in enumerate(keys):
            if key not in self._vectors and (stored := self._stored.get(_file_key(*key))) is not None:
                self._vectors[key] = stored
            if key in self._vectors:
                vectors[i] = self._vectors[key]
            else:
                missing.append(i)
        if missing:
            started = time.perf_counter()
            vectors[missing] = predictor.embed([prompts[i] for i in missing])
            self.encode_seconds += time.perf_counter() - started
            self.encoded += len(missing)
            self._vectors.update((keys[i], vectors[i].clone()) for i in missing)
        return vectors

    @torch.no_grad()
    def scores(self, predictor: Predictor, prompts: Sequence[str]) -> np.ndarray:
        """`predictor`'s scores of `prompts` from the cached vectors: its head on them (only while its encoder is
        still the one the vectors came from, e.g. after head-only training)."""
        return predictor.head_scores(self.vectors(predictor, prompts), prompts)

    def save(self) -> None:
        """Write every vector (the file's and this run's) to `path`, atomically."""
        if self.path is None:
            raise ValueError("this embedding cache has no file to save to")
        tensors = {**self._stored, **{_file_key(*key): v.contiguous() for key, v in self._vectors.items()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        save_file(tensors, str(partial))
        partial.replace(self.path)
        self._stored = tensors


def _file_key(reading: str, prompt: str) -> str:
    return hashlib.sha256(f"{reading}\x00{prompt}".encode()).hexdigest()


def encoder_fingerprint(predictor: Predictor) -> str:
    """A short hash of the encoder's name, pooling, max length and weights: which vectors a file may hold."""
    digest = hashlib.sha256(f"{predictor.config.encoder}\x00{predictor.config.pooling}\x00{predictor.max_length}".encode())
    for name, tensor in sorted(predictor.ranker.encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def disk_cache(directory: Path, predictor: Predictor) -> EmbeddingCache:
    """The cache file for `predictor`'s encoder under `directory` (each encoder's vectors in their own file)."""
    return EmbeddingCache(directory / f"embeddings-{encoder_fingerprint(predictor)}.safetensors")
