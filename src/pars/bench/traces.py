"""Real arrival traces shipped in data/traces/: read arrival times, then time-scale them to a target rate.

The traces give arrival times and token counts, not prompts; the workload pairs each arrival with a test
prompt (see `pars.bench.workload`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from pars.paths import bundled_data_dir


@dataclass(frozen=True)
class TraceFile:
    """One shipped trace: its file name under data/traces/ and how its timestamps are written."""

    file: str
    kind: str  # "azure": CSV with a TIMESTAMP column; "mooncake": JSONL with "timestamp" in ms


TRACES: dict[str, TraceFile] = {
    "azure-conv": TraceFile("azure_llm_2023_conv.csv", "azure"),
    "azure-code": TraceFile("azure_llm_2023_code.csv", "azure"),
    "mooncake-conv": TraceFile("mooncake_conversation_trace.jsonl", "mooncake"),
}


def _azure_seconds(path: Path) -> list[float]:
    with path.open(encoding="utf-8") as handle:
        # Timestamps carry 7 fractional digits; datetime takes at most 6.
        stamps = [datetime.fromisoformat(row["TIMESTAMP"][:26]) for row in csv.DictReader(handle)]
    return [(stamp - stamps[0]).total_seconds() for stamp in stamps]


def _mooncake_seconds(path: Path) -> list[float]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line)["timestamp"] / 1000.0 for line in handle if line.strip()]


def load_trace(name: str, data_dir: Path | None = None) -> np.ndarray:
    """Arrival times in seconds from the first arrival, sorted (a stable sort keeps ties in file order)."""
    if name not in TRACES:
        raise ValueError(f"unknown trace {name!r}; choose one of {sorted(TRACES)}")
    trace = TRACES[name]
    path = (data_dir or bundled_data_dir()) / "traces" / trace.file
    if not path.exists():
        raise FileNotFoundError(f"{path}: trace file missing from the bundled data")
    seconds = _azure_seconds(path) if trace.kind == "azure" else _mooncake_seconds(path)
    times = np.sort(np.asarray(seconds, dtype=float), kind="stable")
    return times - times[0]


def scale_trace(times: np.ndarray, n: int, rate: float) -> np.ndarray:
    """The first `n` arrivals, time-stretched so their mean rate is `rate` requests/s.

    A positive factor keeps the order of arrivals and the shape of bursts and lulls; only the clock changes.
    """
    if n < 2 or n > len(times):
        raise ValueError(f"need 2 <= n <= {len(times)} arrivals, got {n}")
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    window = np.asarray(times[:n], dtype=float) - times[0]
    span = window[-1]
    if span <= 0:
        raise ValueError("the trace window has all arrivals at one instant; use a burst instead")
    observed_rate = (n - 1) / span
    return window * (observed_rate / rate)
