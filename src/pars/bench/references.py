"""Reference points for the ranking benchmark: scoring rules that no trained ranker is, on the same records.

Prompt length is the deployable heuristic; a second run of the same model shows how much of one run's
order is reproducible at all (the noise ceiling); the median of the OTHER models' lengths for the prompt
(not deployable: it needs their answers) shows how much of a model's order the prompt alone decides.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from pars.data.records import LengthRecord
from pars.data.splits import normalise_prompt

NOISE_CEILING_PAIR = ("vicuna-13b-v1.5", "vicuna-13b-v1.5-togetherai")

ScoreRule = Callable[[LengthRecord], float]


def prompt_length(record: LengthRecord) -> float:
    """Characters of the prompt: longer questions, longer answers (the naive heuristic)."""
    return float(len(record.prompt))


def _prompt_key(record: LengthRecord) -> tuple[str, str]:
    """Sources are kept apart (as in evaluation): the same text in two data sets is two prompts here."""
    return record.source, normalise_prompt(record.prompt)


def _log_lengths_by_prompt(records: Sequence[LengthRecord]) -> dict[tuple[str, str], dict[str, float]]:
    """(source, normalised prompt) -> model -> mean log(1 + length) (a model seen twice is averaged)."""
    logs: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        logs[_prompt_key(record)][record.model].append(float(np.log1p(record.response_tokens)))
    return {prompt: {m: float(np.mean(v)) for m, v in by_model.items()} for prompt, by_model in logs.items()}


def crowd_median(records: Sequence[LengthRecord]) -> ScoreRule:
    """Score a record by the median log length that the OTHER models gave for its prompt (NaN if none did)."""
    table = _log_lengths_by_prompt(records)

    def score(record: LengthRecord) -> float:
        others = [v for m, v in table[_prompt_key(record)].items() if m != record.model]
        return float(np.median(others)) if others else float("nan")

    return score


def second_run(records: Sequence[LengthRecord], model: str, other: str) -> tuple[list[LengthRecord], ScoreRule]:
    """`model`'s records on the prompts that `other` also answered, and the rule that scores each by `other`'s length.

    Raises ValueError when the two models share no prompt.
    """
    table = _log_lengths_by_prompt([r for r in records if r.model == other])
    rows = [r for r in records if r.model == model and _prompt_key(r) in table]
    if not rows:
        raise ValueError(f"{model!r} and {other!r} answered no common prompt in these records")
    return rows, lambda record: table[_prompt_key(record)][other]
