"""Fixtures for the real-engine tests: the tiny model, a real (untrained-head) predictor, engines."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator

import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

# vllm is a declared dependency ([vllm] extra, installed by `make test`): a broken install must fail the
# suite here, not skip every engine test.
import vllm  # noqa: E402, F401


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory):
    from pars.integrations.vllm import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def predictor_dir(tmp_path_factory: pytest.TempPathFactory):
    """A real MiniLM encoder with a random head: scores are arbitrary but real and deterministic."""
    from pars.predictor import Predictor

    return Predictor.untrained(seed=0).save(tmp_path_factory.mktemp("predictor"))


@pytest.fixture
def engine(tiny_model, predictor_dir) -> Iterator[Callable]:
    """Builds one in-process engine per test (max_num_seqs 4 unless given) and frees it afterwards."""
    from pars.integrations.vllm import build_llm

    built = []

    def build(policy: str, **kwargs):
        kwargs.setdefault("max_num_seqs", 4)
        kwargs.setdefault("max_model_len", 4096)
        llm = build_llm(tiny_model, policy, predictor_dir=predictor_dir, **kwargs)
        built.append(llm)
        return llm

    yield build
    for llm in built:
        llm.llm_engine.engine_core.shutdown()
    built.clear()
    gc.collect()
