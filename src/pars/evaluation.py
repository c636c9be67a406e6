"""Evaluate a ranker on held-out records: per model, per source, and two overall means.

"Overall" is the mean of the per-model taus, never one tau over rows pooled across models or sources
(that would reward guessing which model or source a row came from). "Balanced" is the mean over sources
of each source's mean over its models: the bundled data has 216 AlpacaEval models and a handful from the
other sources, so the mean over models mostly measures AlpacaEval, and the balanced mean does not. A
model that answered prompts of several sources is evaluated once per source, named `source/model`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from pars.data.records import LengthRecord
from pars.data.splits import normalise_prompt
from pars.metrics import RankingReport, kendall_tau, ranking_report

MIN_PROMPTS_PER_MODEL = 10


METRICS = ("kendall_tau", "spearman", "pairwise_accuracy")


@dataclass(frozen=True)
class Evaluation:
    overall: dict[str, float]  # kendall_tau, spearman, pairwise_accuracy: means over models; n: rows
    per_model: dict[str, RankingReport]
    per_source: dict[str, dict[str, float]]  # the same means over each source's models
    balanced: dict[str, float]  # means over sources of the per-source means
    # 95 % prompt-bootstrap intervals of the per-source and balanced taus (`bootstrap_tau_intervals`), if asked
    tau_intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        intervals = {"tau_intervals": {k: list(v) for k, v in self.tau_intervals.items()}} if self.tau_intervals else {}
        return {**self.overall, "balanced": self.balanced, "per_source": self.per_source,
                "per_model": {m: asdict(r) for m, r in self.per_model.items()}, **intervals}


def mean_metrics(reports: Sequence[RankingReport]) -> dict[str, float]:
    """The metric means over `reports` (NaN-tolerant), their row count and how many there are."""
    means: dict[str, float] = {name: float(np.nanmean([getattr(r, name) for r in reports])) for name in METRICS}
    return {**means, "n": int(sum(r.n for r in reports)), "models": len(reports)}


def evaluate_scores(records: Sequence[LengthRecord], score_of: Callable[[LengthRecord], float],
                    threshold: float = 0.2, min_prompts: int = MIN_PROMPTS_PER_MODEL) -> Evaluation:
    """Metrics per model from any scoring rule; models with fewer than `min_prompts` rows are left out."""
    by_model: dict[tuple[str, str], list[LengthRecord]] = defaultdict(list)
    for record in records:
        by_model[(record.source, record.model)].append(record)
    several_sources = len({source for source, _ in by_model}) > 1
    per_model: dict[str, RankingReport] = {}
    by_source: dict[str, list[RankingReport]] = defaultdict(list)
    for (source, model), rows in sorted(by_model.items()):
        if len(rows) < min_prompts:
            continue
        scores = np.array([score_of(r) for r in rows], dtype=float)
        lengths = np.array([r.response_tokens for r in rows], dtype=float)
        report = ranking_report(scores, lengths, threshold)
        per_model[f"{source}/{model}" if several_sources else model] = report
        by_source[source].append(report)
    if not per_model:
        raise ValueError(f"no model has {min_prompts}+ evaluation rows")
    per_source = {source: mean_metrics(reports) for source, reports in sorted(by_source.items())}
    balanced = {name: float(np.nanmean([m[name] for m in per_source.values()])) for name in METRICS}
    balanced["sources"] = len(per_source)
    return Evaluation(mean_metrics(list(per_model.values())), per_model, per_source, balanced)


def score_table(prompts: Sequence[str], scores: np.ndarray) -> Callable[[LengthRecord], float]:
    """A record -> score lookup by normalised prompt text (each distinct prompt is scored once)."""
    table = {normalise_prompt(p): float(s) for p, s in zip(prompts, scores)}
    return lambda record: table[normalise_prompt(record.prompt)]


def distinct_prompts(records: Sequence[LengthRecord]) -> list[str]:
    seen: dict[str, str] = {}
    for record in records:
        seen.setdefault(normalise_prompt(record.prompt), record.prompt)
    return list(seen.values())


CONFIDENCE = 0.95


def bootstrap_tau_intervals(records: Sequence[LengthRecord], score_of: Callable[[LengthRecord], float],
                            rounds: int = 200, seed: int = 0,
                            min_prompts: int = MIN_PROMPTS_PER_MODEL) -> dict[str, tuple[float, float]]:
    """95 % intervals of each source's mean Kendall tau and of the balanced tau, from `rounds` resamples of the
    test PROMPTS (with replacement, within each source; every model of the source keeps the rows of the drawn
    prompts). They say how much the headline depends on which prompts the split put in the test part: arena-bench
    has 58. Training seeds add their own spread on top."""
    rows: dict[str, dict[str, dict[str, tuple[float, float]]]] = defaultdict(lambda: defaultdict(dict))
    for record in records:
        rows[record.source][record.model][normalise_prompt(record.prompt)] = (score_of(record), record.response_tokens)
    keys = {source: sorted({key for model_rows in models.values() for key in model_rows})
            for source, models in rows.items()}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        means = {}
        for source, models in sorted(rows.items()):
            drawn = rng.choice(keys[source], size=len(keys[source]))
            taus = []
            for model_rows in models.values():
                pairs = np.array([model_rows[key] for key in drawn if key in model_rows])
                if len(pairs) >= min_prompts:
                    taus.append(kendall_tau(pairs[:, 0], pairs[:, 1]))
            if taus:
                means[source] = float(np.nanmean(taus))
                draws[source].append(means[source])
        if means:
            draws["balanced"].append(float(np.mean(list(means.values()))))
    tail = 100 * (1 - CONFIDENCE) / 2
    return {name: (float(np.nanpercentile(values, tail)), float(np.nanpercentile(values, 100 - tail)))
            for name, values in draws.items()}

