"""Open models' lengths (CASTILLO, `data/open/`): per (prompt, model) the 10 sampled lengths, not one label.

The spread of one model's lengths on one prompt is the point of this data: a ranker can be no better than the
model agrees with itself (`self_agreement`), and a distributional head trains on the samples. A sample of 14,999
tokens or more is dropped (the cap reads 15,001; CASTILLO treats 14,999 and more as degenerate text), and so is a
row whose prompt was cut before the model saw it (`truncated`), or one with fewer than `MIN_SAMPLES` usable ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pars.data.loaders import _csv_rows, _read_prompts
from pars.data.records import DataError, LengthRecord

OPEN_SOURCE = "open"  # the source every open-model record carries (the balanced metric's `open`)
DEGENERATE_TOKENS = 14_999  # CASTILLO's own threshold for text that ran to the cap
MIN_SAMPLES = 5
OPEN_DIR = "open"  # inside the bundled data directory
PROMPTS_FILE, LENGTHS_FILE = "castillo_prompts.jsonl", "castillo_lengths.csv.gz"


@dataclass(frozen=True)
class OpenLengths:
    """One open model's usable sampled lengths on one prompt; `dataset` is CASTILLO's (castillo_sharegpt, ...)."""

    prompt: str
    prompt_id: str
    dataset: str
    model: str
    samples: tuple[int, ...]

    def record(self) -> LengthRecord:
        """The plain label a pairwise ranker trains on: the mean of the samples, rounded."""
        return LengthRecord(self.prompt, round(float(np.mean(self.samples))), self.model, OPEN_SOURCE,
                            self.prompt_id)


def load_open(directory: str | Path) -> list[OpenLengths]:
    """Join `castillo_prompts.jsonl` and `castillo_lengths.csv.gz` on prompt_id; a malformed file or row raises
    `DataError` naming it."""
    directory = Path(directory)
    prompts = _read_prompts(directory / PROMPTS_FILE)
    path = directory / LENGTHS_FILE
    rows: list[OpenLengths] = []
    for line_no, row in _csv_rows(path, ("source", "prompt_id", "model", "samples", "truncated")):
        prompt = prompts.get(row["prompt_id"])
        if prompt is None:
            raise DataError(f"{path}:{line_no}: prompt_id {row['prompt_id']} not in {PROMPTS_FILE}")
        try:
            samples = tuple(int(x) for x in row["samples"].split() if int(x) < DEGENERATE_TOKENS)
        except ValueError:
            raise DataError(f"{path}:{line_no}: samples must be integers, got {row['samples'][:80]!r}") from None
        if row["truncated"] == "0" and len(samples) >= MIN_SAMPLES:
            rows.append(OpenLengths(prompt["prompt"], row["prompt_id"], row["source"], row["model"], samples))
    if not rows:
        raise DataError(f"{path}: no usable rows")
    return rows


def self_agreement(samples: Sequence[Sequence[int]]) -> float:
    """How well a model ranks its own prompts: Kendall tau of the mean of half the samples vs the mean of the
    other half, averaged over every way to halve them (126 for 10 samples; each prompt cut to the fewest samples
    any has). The data README's noise ceiling, a rough one: two means of 5, where a mean of 10 is steadier. Pure."""
    from scipy.stats import kendalltau

    width = min(len(s) for s in samples)
    matrix = np.array([s[:width] for s in samples], dtype=float)
    taus = []
    for first in itertools.combinations(range(1, width), width // 2 - 1):  # sample 0 always in the first half
        chosen = [0, *first]
        rest = [i for i in range(width) if i not in chosen]
        taus.append(kendalltau(matrix[:, chosen].mean(axis=1), matrix[:, rest].mean(axis=1)).statistic)
    return float(np.mean(taus))


def by_model(rows: Iterable[OpenLengths]) -> dict[str, list[OpenLengths]]:
    grouped: dict[str, list[OpenLengths]] = {}
    for row in rows:
        grouped.setdefault(row.model, []).append(row)
    return grouped
