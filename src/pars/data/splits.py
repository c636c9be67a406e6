"""Deterministic train/validation/test split by normalised prompt TEXT, never by row.

The same prompt appears under different ids in different sources; hashing the normalised text with a
seed puts every copy of it in the same part, so no test prompt is ever trained on under any model.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, asdict

from pars.data.records import LengthRecord

PARTS = ("train", "val", "test")
_PUNCTUATION = re.compile(r"[^\w\s]")
_SPACES = re.compile(r"\s+")


@functools.lru_cache(maxsize=1 << 16)
def normalise_prompt(prompt: str) -> str:
    """Lower-case, punctuation removed, white space folded: the key for deduplication and splits.

    Cached: the bundled data repeats each of its 1,855 prompts for every model (170k records), and splitting,
    grouping and fingerprinting them normalised the same texts again and again (about 10 s of `pars train`)."""
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", prompt.lower())).strip()


@dataclass(frozen=True)
class PromptSplit:
    """Assigns a prompt to a part by a seeded hash of its normalised text (stable, order-free)."""

    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.2

    def __post_init__(self) -> None:
        if not (0 <= self.val_fraction and 0 <= self.test_fraction and self.val_fraction + self.test_fraction < 1):
            raise ValueError("val_fraction and test_fraction must be >= 0 and sum to less than 1")

    def part_of(self, prompt: str) -> str:
        digest = hashlib.sha256(f"{self.seed}\x00{normalise_prompt(prompt)}".encode()).digest()
        position = int.from_bytes(digest[:8], "big") / 2**64
        if position < self.test_fraction:
            return "test"
        if position < self.test_fraction + self.val_fraction:
            return "val"
        return "train"

    def partition(self, records: Iterable[LengthRecord]) -> dict[str, list[LengthRecord]]:
        parts: dict[str, list[LengthRecord]] = {name: [] for name in PARTS}
        for record in records:
            parts[self.part_of(record.prompt)].append(record)
        return parts

    def to_dict(self) -> dict:
        return asdict(self)
