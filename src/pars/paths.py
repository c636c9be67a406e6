"""Where the bundled data and the default artifacts live (relative to the project checkout)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def bundled_data_dir() -> Path:
    """The `data/` folder shipped with the project; PARS_DATA_DIR overrides it."""
    return Path(os.environ.get("PARS_DATA_DIR", PROJECT_ROOT / "data"))


def default_predictor_dir() -> Path:
    """What `make demo` trains and what commands use when no --predictor is given."""
    return Path(os.environ.get("PARS_PREDICTOR", PROJECT_ROOT / "artifacts" / "predictor"))
