"""Length records, loaders, prompt-level splits and length-gap pair building."""

from pars.data.records import DataError, LengthRecord
from pars.data.loaders import load_bundled, load_jsonl, load_records
from pars.data.splits import PromptSplit, normalise_prompt
from pars.data.pairs import length_gap_ratio, in_batch_pairs

__all__ = [
    "DataError",
    "LengthRecord",
    "load_bundled",
    "load_jsonl",
    "load_records",
    "PromptSplit",
    "normalise_prompt",
    "length_gap_ratio",
    "in_batch_pairs",
]
