"""Shared fixtures: small real data sets cut from the bundled files, and an untrained real encoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pars.data import load_bundled
from pars.paths import bundled_data_dir


@pytest.fixture(scope="session")
def gpt4_records():
    """Real prompts with real gpt4_1106_preview response lengths (805 AlpacaEval prompts)."""
    return load_bundled(bundled_data_dir(), models=["gpt4_1106_preview"])


@pytest.fixture(scope="session")
def small_jsonl(tmp_path_factory, gpt4_records) -> Path:
    """A user-format JSONL file of 64 real prompts and lengths."""
    path = tmp_path_factory.mktemp("data") / "small.jsonl"
    with path.open("w") as f:
        for r in gpt4_records[:64]:
            f.write(json.dumps({"prompt": r.prompt, "response_tokens": r.response_tokens, "model": r.model}) + "\n")
    return path
