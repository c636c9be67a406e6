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


@pytest.fixture(scope="session")
def student_dir(tmp_path_factory) -> Path:
    """A real distilled student: a real MiniLM teacher (random head) distilled on 400 bundled training prompts,
    small settings so it takes seconds."""
    from pars.jobs import DistillJob, run_distillation
    from pars.predictor import Predictor
    from pars.predictor.distillation import DistillSettings

    teacher = Predictor.untrained(seed=0).save(tmp_path_factory.mktemp("teacher"))
    settings = DistillSettings(vocabulary_words=3000, buckets=256, hidden=16, epochs=2)
    run_distillation(DistillJob(str(teacher), max_prompts=400, settings=settings), teacher / "student")
    return teacher / "student"
