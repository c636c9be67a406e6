"""The length ranker: encoder + head, losses, training loop, checkpoint I/O and scoring; the distilled student."""

from pars.predictor.encoders import DEFAULT_ENCODER, EncoderNotFound, resolve_encoder
from pars.predictor.loading import Ranker, load_ranker
from pars.predictor.checkpoint import CheckpointError
from pars.predictor.model import LengthRanker, Predictor, PredictorConfig
from pars.predictor.student import StaticStudent

__all__ = [
    "DEFAULT_ENCODER",
    "EncoderNotFound",
    "resolve_encoder",
    "CheckpointError",
    "LengthRanker",
    "Predictor",
    "PredictorConfig",
    "Ranker",
    "StaticStudent",
    "load_ranker",
]
