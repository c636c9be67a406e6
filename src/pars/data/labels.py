"""Turn length records into ranking targets: one row per distinct prompt, one column per label.

Per-model mode keeps each model's lengths as its own column (pairs are formed within a model).
Consensus mode gives one column: per prompt, the median over models of log(1 + length), mapped back to
tokens; it averages away much of one model's sampling noise, which suits a generalist ranker.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pars.data.records import LengthRecord
from pars.data.splits import normalise_prompt

LABEL_MODES = ("per-model", "consensus")


@dataclass(frozen=True)
class LabelledPrompts:
    prompts: list[str]  # one text per distinct normalised prompt
    label_names: list[str]  # models, or ["consensus"]
    lengths: np.ndarray  # [prompts, labels] float, NaN where missing


def group_by_prompt(records: Sequence[LengthRecord], mode: str = "per-model") -> LabelledPrompts:
    """Merge records of the same normalised prompt; a model seen twice for one prompt gets its mean log length."""
    if mode not in LABEL_MODES:
        raise ValueError(f"unknown label mode {mode!r}; choose one of {', '.join(LABEL_MODES)}")
    texts: dict[str, str] = {}
    logs: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        key = normalise_prompt(record.prompt)
        texts.setdefault(key, record.prompt)
        logs[key][record.model].append(np.log1p(record.response_tokens))
    keys = list(texts)
    if mode == "consensus":
        values = [np.median([np.mean(v) for v in logs[k].values()]) for k in keys]
        lengths = np.expm1(np.asarray(values, dtype=np.float64))[:, None]
        return LabelledPrompts([texts[k] for k in keys], ["consensus"], lengths)
    models = sorted({m for k in keys for m in logs[k]})
    column = {m: i for i, m in enumerate(models)}
    lengths = np.full((len(keys), len(models)), np.nan)
    for row, key in enumerate(keys):
        for model, values in logs[key].items():
            lengths[row, column[model]] = np.expm1(np.mean(values))
    return LabelledPrompts([texts[k] for k in keys], models, lengths)
