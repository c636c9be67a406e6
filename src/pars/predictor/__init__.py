"""The length ranker: encoder + head, losses, training loop, checkpoint I/O and scoring."""

from pars.predictor.encoders import DEFAULT_ENCODER, EncoderNotFound, resolve_encoder
from pars.predictor.model import CheckpointError, LengthRanker, Predictor, PredictorConfig

__all__ = [
    "DEFAULT_ENCODER",
    "EncoderNotFound",
    "resolve_encoder",
    "CheckpointError",
    "LengthRanker",
    "Predictor",
    "PredictorConfig",
]
