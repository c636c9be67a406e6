"""The learner in one process, with real parts: a real distilled student served by the real front-end scorer,
the real refit worker as a subprocess, real lengths of real prompts. The faults are injected on purpose through
the worker's `inject_fault` (crash, hang, nan, corrupt, worse; pars.learning.worker), and each test says which."""

from __future__ import annotations

import asyncio
import json
import shutil

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from pars.learning.learner import Learner, LearnSettings
from pars.learning.length_log import read_lengths
from pars.learning.metrics import LearnerMetrics
from pars.learning.refit import refit_head
from pars.learning.responses import Outcome
from pars.learning.state import LearnDir
from pars.predictor.checkpoint import CheckpointError
from pars.predictor.student import StaticStudent
from pars.scheduling import SchedulerSettings
from pars.scoring import FrontEndScorer


@pytest.fixture(scope="module")
def ranking_student(student_dir, gpt4_records, tmp_path_factory):
    """The fixture student refitted offline on 600 real lengths, so that its order means something (and a
    reversed copy of it is clearly worse)."""
    student = StaticStudent.load(student_dir)
    records = gpt4_records[:600]
    features = student.features([r.prompt for r in records])
    lengths = np.array([r.response_tokens for r in records])
    return refit_head(student, features, lengths, np.zeros(len(records), dtype=bool)).save(
        tmp_path_factory.mktemp("ranking-student"))


def learner_for(tmp_path, served, every: int, fault: str | None = None, timeout_s: float = 120.0,
                store: str = "text"):
    learn = LearnDir(tmp_path / "learn")
    current = learn.prepare(served)
    scorer = FrontEndScorer.for_checkpoint(current, SchedulerSettings())
    registry = CollectorRegistry()
    settings = LearnSettings(every=every, store=store, fault=fault, timeout_s=timeout_s)
    learner = Learner(learn, scorer, settings, "served-model", LearnerMetrics(registry))
    return learner, scorer, registry


@pytest.fixture
def loop():
    """One event loop for the whole test, as in the server: the refit worker's pipes belong to the loop that
    started it."""
    with asyncio.Runner() as runner:
        yield runner


def feed(loop, learner, records, finish: str = "stop") -> None:
    async def run() -> None:
        for record in records:
            learner.observe(record.prompt, Outcome(record.response_tokens, finish, 12))
        while learner.refitting is not None:
            await asyncio.sleep(0.05)

    loop.run(run())


def value(registry, name, **labels) -> float:
    return registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("store", ["text", "embeddings"])
def test_a_refit_runs_every_n_lengths_and_its_verdict_is_recorded(tmp_path, student_dir, gpt4_records, store, loop):
    learner, _, registry = learner_for(tmp_path, student_dir, every=40, store=store)
    feed(loop, learner, gpt4_records[600:640])
    logged = read_lengths(learner.log.path)[0]
    assert all((row.prompt is None) == (store == "embeddings") for row in logged)
    assert value(registry, "pars_learn_refits_total", outcome="done") == 1
    assert value(registry, "pars_learn_logged_total", kind="exact") == 40
    assert value(registry, "pars_learn_log_bytes") == learner.log.size() > 0
    events = [json.loads(line)["event"] for line in learner.learn.lineage.read_text().splitlines()]
    assert events[0] == "start" and events[-1] in ("swap", "rejected")
    report = json.loads((learner.learn.candidate / "refit.json").read_text())
    assert report["rows"] == 40 and report["trained_on"] == 30 and report["seconds"] < 60
    StaticStudent.load(learner.learn.current)  # the live scorer is always a whole checkpoint


def test_a_swap_serves_the_new_scorer_and_a_worse_one_is_rolled_back(tmp_path, ranking_student, gpt4_records,
                                                                      loop):
    """Injected: the `worse` fault swaps in the live student with its order reversed, claimed better."""
    learner, scorer, registry = learner_for(tmp_path, ranking_student, every=120, fault="worse")
    body = {"messages": [{"role": "user", "content": gpt4_records[0].prompt}]}
    before = loop.run(scorer.score("/v1/chat/completions", body)).score
    feed(loop, learner, gpt4_records[600:720])
    assert value(registry, "pars_learn_swaps_total", outcome="swapped") == 1
    swapped = loop.run(scorer.score("/v1/chat/completions", body)).score
    assert swapped == pytest.approx(-before, rel=1e-4)  # the front end scores with the swapped-in scorer
    learner.settings = LearnSettings(every=120)  # no more faults: the window after the swap decides
    feed(loop, learner, gpt4_records[720:805] + gpt4_records[:35])
    assert value(registry, "pars_learn_rollbacks_total") == 1
    assert loop.run(scorer.score("/v1/chat/completions", body)).score == pytest.approx(before, rel=1e-4)
    restored = StaticStudent.load(learner.learn.current)  # DIR/current is the rolled-back scorer again
    assert restored.score([gpt4_records[0].prompt])[0] == pytest.approx(before, rel=1e-4)
    assert value(registry, "pars_learn_rolling_tau", scorer="initial") > 0.1


@pytest.mark.parametrize("fault, outcome", [("crash", "crashed"), ("nan", "failed"), ("hang", "timeout")])
def test_a_refit_that_crashes_hangs_or_diverges_leaves_the_server_serving(tmp_path, student_dir, gpt4_records,
                                                                          fault, outcome, loop):
    """Injected: the refit job fails on purpose in the given way."""
    learner, scorer, registry = learner_for(tmp_path, student_dir, every=40, fault=fault,
                                            timeout_s=15.0 if fault == "hang" else 120.0)
    live = learner.live
    feed(loop, learner, gpt4_records[600:640])
    assert value(registry, "pars_learn_refits_total", outcome=outcome) == 1
    assert learner.live is live and learner.refitting is None
    assert loop.run(scorer.score("/v1/completions", {"prompt": "still scoring?"})).score is not None
    assert len(read_lengths(learner.log.path)[0]) == 40  # nothing logged was lost


def test_the_refit_worker_is_kept_between_refits_and_started_again_after_a_crash(tmp_path, student_dir,
                                                                                 gpt4_records, loop):
    """Injected: the first refit crashes the worker on purpose (the `crash` fault)."""
    learner, _, registry = learner_for(tmp_path, student_dir, every=40, fault="crash")
    feed(loop, learner, gpt4_records[600:640])
    crashed = learner.worker.process
    assert value(registry, "pars_learn_refits_total", outcome="crashed") == 1 and crashed.returncode == 70
    learner.settings = LearnSettings(every=40)
    feed(loop, learner, gpt4_records[640:680])
    started = learner.worker.process
    feed(loop, learner, gpt4_records[680:760])  # a swap's watch window, then the next refit
    assert value(registry, "pars_learn_refits_total", outcome="done") == 2
    assert started is not crashed and learner.worker.process is started and started.returncode is None
    reports = [json.loads(line) for line in learner.learn.lineage.read_text().splitlines()]
    assert all(0 < r["cpu_seconds"] < 60 for r in reports if r["event"] in ("swap", "rejected"))


def test_a_candidate_that_does_not_load_is_counted_and_the_live_scorer_stays(tmp_path, student_dir, gpt4_records,
                                                                             loop):
    """Injected: the `corrupt` fault writes a candidate whose weights are not a safetensors file."""
    learner, _, registry = learner_for(tmp_path, student_dir, every=40, fault="corrupt")
    live = learner.live
    feed(loop, learner, gpt4_records[600:640])
    assert value(registry, "pars_learn_swaps_total", outcome="load_failed") == 1
    assert learner.live is live
    StaticStudent.load(learner.learn.current)


def test_learning_needs_a_student_and_a_loadable_current(tmp_path, student_dir):
    with pytest.raises(CheckpointError, match="refits a distilled student"):
        LearnDir(tmp_path / "teacher").prepare(student_dir.parent)  # the student's teacher
    learn = LearnDir(tmp_path / "broken")
    learn.prepare(student_dir)
    (learn.current / "model.safetensors").write_bytes(b"broken")
    with pytest.raises(CheckpointError, match="move .* away"):
        learn.prepare(student_dir)
    shutil.rmtree(learn.current)
    assert learn.prepare(student_dir) == learn.current  # a restart rebuilds current from initial
