"""The one scoring component: user text -> ranker score, micro-batched off the caller's thread.

Used by the API-server front end of `pars serve` (and the serving benchmark, which submits the same
way) and by the engine's fallback scorer for requests that arrive without a score. Engine-free.
"""

from pars.scoring.batcher import ScoreFn, ScoreResult, ScoringBatcher
from pars.scoring.frontend import FrontEndScorer, predictor_score_fn
from pars.scoring.text import ENDPOINTS, UnreadableRequest, user_text

__all__ = ["ScoreFn", "ScoreResult", "ScoringBatcher", "FrontEndScorer", "predictor_score_fn", "ENDPOINTS",
           "UnreadableRequest", "user_text"]
