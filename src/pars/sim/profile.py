"""How long one engine step takes on a given GPU and model: a linear cost model fitted to measured steps.

The simulator needs only this number per step; the four terms are the costs a transformer step pays
roughly in proportion (fixed launch/sampling overhead, prefill matmuls, per-sequence decode work,
attention reads over the context held in the KV cache).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import nnls

PROFILES_DIR = Path(__file__).parent / "profiles"  # shipped profiles, package data
COEFFICIENTS = ("base_s", "per_prefill_token_s", "per_decode_seq_s", "per_kv_token_s")


@dataclass(frozen=True)
class ProfileFit:
    """How well a fitted profile reproduces its samples: R^2 and mean |predicted - measured| / measured."""

    r2: float
    mean_relative_error: float
    samples: int


@dataclass(frozen=True)
class StepProfile:
    """Step time = base + per_prefill_token * prefill tokens + per_decode_seq * decoding sequences
    + per_kv_token * context tokens (computed + being computed) of the scheduled requests.

    `source` says where the numbers came from (GPU, model, vLLM version, date); `quality` is set when the
    profile was fitted."""

    name: str
    source: str
    base_s: float
    per_prefill_token_s: float
    per_decode_seq_s: float
    per_kv_token_s: float
    quality: ProfileFit | None = None

    def __post_init__(self) -> None:
        for key in COEFFICIENTS:
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value) and value >= 0):
                raise ValueError(f"step profile {self.name!r}: {key} must be a finite number >= 0, got {value!r}")

    def step_time(self, prefill_tokens: int, decode_seqs: int, kv_tokens: int) -> float:
        return (self.base_s + self.per_prefill_token_s * prefill_tokens
                + self.per_decode_seq_s * decode_seqs + self.per_kv_token_s * kv_tokens)

    @classmethod
    def fit(cls, samples: ArrayLike, name: str = "fitted", source: str = "") -> StepProfile:
        """Non-negative least squares over rows (prefill_tokens, decode_seqs, kv_tokens, seconds).

        Columns are scaled to unit maximum before solving, so microsecond-sized coefficients on
        100k-token columns do not lose precision.
        """
        rows = np.asarray(samples, dtype=float)
        if rows.ndim != 2 or rows.shape[1] != 4 or len(rows) < 4:
            raise ValueError(f"need at least 4 rows of (prefill_tokens, decode_seqs, kv_tokens, seconds), "
                             f"got shape {rows.shape}")
        if not np.isfinite(rows).all() or (rows < 0).any() or (rows[:, 3] <= 0).any():
            raise ValueError("step samples must be finite, non-negative, with seconds > 0")
        design = np.column_stack([np.ones(len(rows)), rows[:, :3]])
        scale = np.abs(design).max(axis=0)
        scale[scale == 0] = 1.0
        seconds = rows[:, 3]
        scaled_coef, _ = nnls(design / scale, seconds)
        coef = scaled_coef / scale
        predicted = design @ coef
        total = float(((seconds - seconds.mean()) ** 2).sum())
        residual = float(((seconds - predicted) ** 2).sum())
        quality = ProfileFit(
            r2=1.0 - residual / total if total > 0 else float("nan"),
            mean_relative_error=float(np.mean(np.abs(predicted - seconds) / seconds)),
            samples=len(rows),
        )
        return cls(name, source, *(float(c) for c in coef), quality=quality)

    def save(self, path: str | Path) -> None:
        data = asdict(self)
        quality = data.pop("quality")
        if quality is not None:
            data["fit"] = quality
        Path(path).write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> StepProfile:
        """Read a profile saved by `save`; any problem raises ValueError naming the file and the field."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ValueError(f"step profile {path}: no such file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"step profile {path}: not readable JSON ({error})") from None
        if not isinstance(data, dict):
            raise ValueError(f"step profile {path}: expected a JSON object, got {type(data).__name__}")
        missing = [key for key in ("name", "source", *COEFFICIENTS) if key not in data]
        if missing:
            raise ValueError(f"step profile {path}: missing {', '.join(missing)}")
        unknown = set(data) - {"name", "source", "fit", *COEFFICIENTS}
        if unknown:
            raise ValueError(f"step profile {path}: unknown keys {', '.join(sorted(unknown))}")
        try:
            quality = None if data.get("fit") is None else ProfileFit(**data["fit"])
            return cls(str(data["name"]), str(data["source"]), *(data[key] for key in COEFFICIENTS),
                       quality=quality)
        except (TypeError, ValueError) as error:
            raise ValueError(f"step profile {path}: {error}") from None

    @classmethod
    def named(cls, name_or_path: str | Path) -> StepProfile:
        """A shipped profile by name (`shipped_profiles()`), or a profile file by path."""
        path = Path(name_or_path)
        if path.suffix == ".json" or path.exists():
            return cls.load(path)
        shipped = PROFILES_DIR / f"{name_or_path}.json"
        if not shipped.exists():
            raise ValueError(f"no step profile named {str(name_or_path)!r}; shipped: {', '.join(shipped_profiles())}"
                             " (or give a path to a profile JSON, e.g. from `pars bench calibrate`)")
        return cls.load(shipped)


def shipped_profiles() -> list[str]:
    """Names of the profiles that ship with the package (src/pars/sim/profiles/*.json)."""
    return sorted(path.stem for path in PROFILES_DIR.glob("*.json"))
