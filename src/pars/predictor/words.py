"""The student's vocabulary: lower-cased words and punctuation marks, each a row of its vector table.

Why words and not the teacher's WordPiece tokens: a Python regex and a dict lookup cost a few microseconds a
prompt, where the Rust tokenizer's call alone cost about 100 (the student's whole budget). Words outside the
vocabulary share `buckets` rows by a stable hash (CRC-32, the same in every process), so no word is dropped.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence

WORD = re.compile(r"\w+|[^\w\s]")


def words_of(text: str, max_words: int) -> list[str]:
    """The first `max_words` words and punctuation marks of `text`, lower-cased."""
    return WORD.findall(text.lower())[:max_words]


class WordVocabulary:
    """Word -> row: a known word its own row (0 .. len(words) - 1), any other one of `buckets` hashed rows.
    (Hashed rows for pairs of neighbouring words were tried: lower tau and slower, docs/scoring.md.)"""

    def __init__(self, words: Sequence[str], buckets: int) -> None:
        if buckets < 1:
            raise ValueError(f"buckets must be >= 1, got {buckets}")
        self.words = list(words)
        self.buckets = buckets
        self._rows = {word: row for row, word in enumerate(self.words)}

    @property
    def size(self) -> int:
        """Rows of the vector table this vocabulary indexes."""
        return len(self.words) + self.buckets

    def row(self, word: str) -> int:
        row = self._rows.get(word)
        if row is None:
            row = len(self.words) + zlib.crc32(word.encode("utf-8", "surrogatepass")) % self.buckets
        return row

    def rows(self, text: str, max_words: int) -> list[int]:
        return [self.row(word) for word in words_of(text, max_words)]

    @classmethod
    def build(cls, texts: Iterable[str], max_size: int, min_count: int, buckets: int,
              read_words: int) -> WordVocabulary:
        """The `max_size` most frequent words (seen at least `min_count` times) in the first `read_words` words
        of `texts`, most frequent first (ties: alphabetical, so a build is deterministic)."""
        counts = Counter(word for text in texts for word in words_of(text, read_words))
        kept = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))[:max_size]
        return cls(kept, buckets)

    def to_dict(self) -> dict:
        return {"words": self.words, "buckets": self.buckets}

    @classmethod
    def from_dict(cls, data: dict) -> WordVocabulary:
        words, buckets = data.get("words"), data.get("buckets")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words) or not isinstance(buckets, int):
            raise ValueError("a vocabulary needs a list of string 'words' and an integer 'buckets'")
        return cls(words, buckets)
