"""The frozen encoder's pooled prompt vectors, computed once: what head-only training stages read every epoch,
and what the ranking benchmark shares across its many runs on the same pretrained encoder."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pars.predictor.model import Predictor


class EmbeddingCache:
    """Pooled fp32 encoder vectors by (max_length, prompt text).

    Valid for ONE encoder's weights and pooling: share it only between predictors built from the same
    pretrained encoder, and never read it for an encoder that has since been fine-tuned.
    """

    def __init__(self) -> None:
        self._vectors: dict[tuple[int, str], torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._vectors)

    def vectors(self, predictor: Predictor, prompts: Sequence[str]) -> torch.Tensor:
        """[prompts, hidden] in input order; only prompts not seen before are encoded, in one `embed` call,
        so a fresh cache gives exactly the vectors `Predictor.embed` gives."""
        keys = [(predictor.max_length, prompt) for prompt in prompts]
        vectors = torch.empty(len(keys), predictor.ranker.encoder.config.hidden_size)
        missing = []
        for i, key in enumerate(keys):
            if key in self._vectors:
                vectors[i] = self._vectors[key]
            else:
                missing.append(i)
        if missing:
            vectors[missing] = predictor.embed([prompts[i] for i in missing])
            self._vectors.update((keys[i], vectors[i].clone()) for i in missing)
        return vectors
