"""The length ranker: encoder + head, losses, training loop, checkpoint I/O and scoring; the distilled student.

Names are loaded on first use (PEP 562), so that importing one light module (the student, the checkpoint
settings) does not import torch and transformers with the encoder.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "DEFAULT_ENCODER": "pars.predictor.encoders",
    "EncoderNotFound": "pars.predictor.encoders",
    "resolve_encoder": "pars.predictor.encoders",
    "Ranker": "pars.predictor.loading",
    "load_ranker": "pars.predictor.loading",
    "CheckpointError": "pars.predictor.checkpoint",
    "LengthRanker": "pars.predictor.model",
    "Predictor": "pars.predictor.model",
    "PredictorConfig": "pars.predictor.config",
    "StaticStudent": "pars.predictor.student",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'pars.predictor' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
