"""Evaluate a ranker on held-out records: per-model metrics and the overall mean over models.

"Overall" is the mean of the per-model taus, never one tau over rows pooled across models or sources
(that would reward guessing which model or source a row came from). A model that answered prompts of
several sources is evaluated once per source, named `source/model`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from pars.data.records import LengthRecord
from pars.data.splits import normalise_prompt
from pars.metrics import RankingReport, ranking_report

MIN_PROMPTS_PER_MODEL = 10


@dataclass(frozen=True)
class Evaluation:
    overall: dict[str, float]  # kendall_tau, spearman, pairwise_accuracy: means over models; n: rows
    per_model: dict[str, RankingReport]

    def to_dict(self) -> dict:
        return {**self.overall, "per_model": {m: asdict(r) for m, r in self.per_model.items()}}


def evaluate_scores(records: Sequence[LengthRecord], score_of: Callable[[LengthRecord], float],
                    threshold: float = 0.2, min_prompts: int = MIN_PROMPTS_PER_MODEL) -> Evaluation:
    """Metrics per model from any scoring rule; models with fewer than `min_prompts` rows are left out."""
    by_model: dict[str, list[LengthRecord]] = defaultdict(list)
    several_sources = len({r.source for r in records}) > 1
    for record in records:
        by_model[f"{record.source}/{record.model}" if several_sources else record.model].append(record)
    per_model = {}
    for model, rows in sorted(by_model.items()):
        if len(rows) < min_prompts:
            continue
        scores = np.array([score_of(r) for r in rows], dtype=float)
        lengths = np.array([r.response_tokens for r in rows], dtype=float)
        per_model[model] = ranking_report(scores, lengths, threshold)
    if not per_model:
        raise ValueError(f"no model has {min_prompts}+ evaluation rows")
    reports = list(per_model.values())
    overall = {
        "kendall_tau": float(np.nanmean([r.kendall_tau for r in reports])),
        "spearman": float(np.nanmean([r.spearman for r in reports])),
        "pairwise_accuracy": float(np.nanmean([r.pairwise_accuracy for r in reports])),
        "n": int(sum(r.n for r in reports)),
        "models": len(reports),
    }
    return Evaluation(overall, per_model)


def score_table(prompts: Sequence[str], scores: np.ndarray) -> Callable[[LengthRecord], float]:
    """A record -> score lookup by normalised prompt text (each distinct prompt is scored once)."""
    table = {normalise_prompt(p): float(s) for p, s in zip(prompts, scores)}
    return lambda record: table[normalise_prompt(record.prompt)]


def distinct_prompts(records: Sequence[LengthRecord]) -> list[str]:
    seen: dict[str, str] = {}
    for record in records:
        seen.setdefault(normalise_prompt(record.prompt), record.prompt)
    return list(seen.values())
