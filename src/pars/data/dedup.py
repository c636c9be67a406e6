"""Near-duplicate prompts across data sets: the same text up to formatting or a few words.

Exact matching on `normalise_prompt` misses copies that differ in layout: 32 of the 166 AlpacaEval test
prompts of split seed 0 are in the extra set's FLASK file as "instruction\\nInput: ...", where the bundle
has "instruction\\n\\n...". Training on those leaks test prompts. Word 5-grams (shingles) catch them: a
candidate is a near-duplicate of a reference prompt when at least half of its shingles are in that one
prompt.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from pars.data.splits import normalise_prompt

SHINGLE_WORDS = 5
MIN_SHARED = 0.5  # of the candidate's shingles, found in one reference prompt


def word_shingles(prompt: str) -> set[tuple[str, ...]]:
    """The normalised prompt's word 5-grams; a shorter prompt is one shingle of all its words."""
    words = normalise_prompt(prompt).split()
    if len(words) <= SHINGLE_WORDS:
        return {tuple(words)}
    return {tuple(words[i:i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)}


class NearDuplicateIndex:
    """The shingles of reference prompts, to ask of any candidate whether it nearly copies one of them."""

    def __init__(self, references: Iterable[str]) -> None:
        self._holders: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for number, prompt in enumerate(references):
            for shingle in word_shingles(prompt):
                self._holders[shingle].append(number)

    def __contains__(self, candidate: str) -> bool:
        shingles = word_shingles(candidate)
        shared = Counter(number for shingle in shingles for number in self._holders.get(shingle, ()))
        return bool(shared) and max(shared.values()) >= MIN_SHARED * len(shingles)
