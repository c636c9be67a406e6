"""Turn length records into ranking targets: one row per distinct prompt, one column per label.

Per-model mode keeps each model's lengths as its own column (pairs are formed within a model).
Consensus mode gives one column per source: per prompt, the median over that source's models of
log(1 + length), mapped back to tokens; it averages away much of one model's sampling noise, which suits a
generalist ranker. Keeping sources apart means no pair ever teaches "which data set is this prompt from".
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

    def rows(self, indices: np.ndarray) -> LabelledPrompts:
        """The prompts at `indices`, with the same label columns."""
        return LabelledPrompts([self.prompts[i] for i in indices], self.label_names, self.lengths[indices])


def group_by_prompt(records: Sequence[LengthRecord], mode: str = "per-model") -> LabelledPrompts:
    """Merge records of the same normalised prompt; a model seen twice for one prompt gets its mean log length."""
    if mode not in LABEL_MODES:
        raise ValueError(f"unknown label mode {mode!r}; choose one of {', '.join(LABEL_MODES)}")
    texts: dict[str, str] = {}
    logs: dict[str, dict[tuple[str, str], list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        key = normalise_prompt(record.prompt)
        texts.setdefault(key, record.prompt)
        logs[key][(record.source, record.model)].append(np.log1p(record.response_tokens))
    keys = list(texts)
    if mode == "consensus":
        sources = sorted({source for k in keys for source, _ in logs[k]})
        lengths = np.full((len(keys), len(sources)), np.nan)
        for row, key in enumerate(keys):
            for col, source in enumerate(sources):
                per_model = [np.mean(v) for (s, _), v in logs[key].items() if s == source]
                if per_model:
                    lengths[row, col] = np.expm1(np.median(per_model))
        return LabelledPrompts([texts[k] for k in keys], [f"consensus:{s}" for s in sources], lengths)
    models = sorted({model for k in keys for _, model in logs[k]})
    column = {m: i for i, m in enumerate(models)}
    lengths = np.full((len(keys), len(models)), np.nan)
    for row, key in enumerate(keys):
        for model in {model for _, model in logs[key]}:
            values = [v for (_, m), vs in logs[key].items() if m == model for v in vs]
            lengths[row, column[model]] = np.expm1(np.mean(values))
    return LabelledPrompts([texts[k] for k in keys], models, lengths)
