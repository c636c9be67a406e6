"""What every router test module serves: the tiny local model and a real predictor with an untrained head."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest


class Served(NamedTuple):
    root: Path  # the module's folder: model, predictor, server logs
    model: Path
    predictor: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Served:
    from pars.integrations.vllm import make_tiny_model
    from pars.predictor import Predictor

    root = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    return Served(root, make_tiny_model(root / "tiny-model"), Predictor.untrained(seed=0).save(root / "predictor"))
