"""One refit, as the refit worker (pars.learning.worker, its own process) runs it on demand.

A refit reads DIR's length log (its last MAX_ROWS lines), holds back its most recent quarter (the slice the guard
judges on), refits the live student's head on the rest (pars.learning.refit), and writes the candidate to
DIR/candidate with `refit.json`: taus of the live, initial and candidate scorers on the slice, the gain the
slice's size asks for, whether the candidate passed, and the wall and CPU seconds it took. The faults exist for
the tests that prove a server survives them, and say so: crash, hang, nan (a non-finite loss), corrupt (a
candidate that does not load, claimed better) and worse (the candidate's order reversed, claimed better: the
swap the rollback must undo)."""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np

from pars.learning.guard import compare, tau
from pars.learning.length_log import LoggedLength, read_lengths
from pars.learning.refit import RefitError, RefitSettings, refit_head
from pars.learning.state import LearnDir
from pars.predictor.student import StaticStudent

HOLDOUT = 0.25
MAX_ROWS = 5000  # the most recent lengths a refit reads: its time stays seconds whatever the log's size
REPORT = "refit.json"
FAULTS = ("crash", "hang", "nan", "corrupt", "worse")


def features_of(student: StaticStudent, rows: list[LoggedLength]) -> np.ndarray:
    """Each row's head input: computed from its text, or as the `embeddings` store logged it."""
    width = student.hidden_weight.shape[0]
    texts = [i for i, row in enumerate(rows) if row.features is None]
    features = np.zeros((len(rows), width), dtype=np.float32)
    if texts:
        features[texts] = student.features([rows[i].prompt or "" for i in texts])
    for i, row in enumerate(rows):
        if row.features is not None:
            if len(row.features) != width:
                raise RefitError(f"a logged feature vector has {len(row.features)} values, the student reads {width}")
            features[i] = row.features
    return features


def reversed_student(student: StaticStudent) -> StaticStudent:
    """The student with its order turned around (the `worse` fault)."""
    weights = {"embeddings": student.embeddings, "hidden_weight": student.hidden_weight,
               "hidden_bias": student.hidden_bias, "out_weight": -student.out_weight,
               "out_bias": np.array([-student.out_bias], dtype=np.float32)}
    return StaticStudent(student.config, student.vocabulary, weights)


def refit(learn: LearnDir, settings: RefitSettings, fault: str | None = None) -> dict:
    started, cpu_started = time.perf_counter(), time.process_time()
    live = StaticStudent.load(learn.current)
    initial = StaticStudent.load(learn.initial)
    rows, skipped = read_lengths(learn.log)
    rows = rows[-MAX_ROWS:]
    if fault == "hang":
        time.sleep(3600)
    if fault == "crash":
        os._exit(70)
    features = features_of(live, rows)
    if fault == "nan":
        features[:] = np.nan
    tokens = np.array([row.tokens for row in rows])
    censored = np.array([row.censored for row in rows], dtype=bool)
    cut = int(len(rows) * (1 - HOLDOUT))
    candidate = refit_head(live, features[:cut], tokens[:cut], censored[:cut], settings)
    if fault == "worse":
        candidate = reversed_student(live)
    exact = np.flatnonzero(~censored[cut:]) + cut
    slice_lengths = tokens[exact]
    verdict = compare(live.score_features(features[exact]), candidate.score_features(features[exact]), slice_lengths)
    staged = learn.candidate.with_name("candidate.tmp")
    shutil.rmtree(staged, ignore_errors=True)
    candidate.save(staged)
    if fault == "corrupt":
        (staged / "model.safetensors").write_bytes(b"not a safetensors file")
    report = {"rows": len(rows), "skipped_lines": skipped, "trained_on": cut, "censored": int(censored.sum()),
              "slice": verdict.n, "tau_live": verdict.tau_live, "tau_candidate": verdict.tau_candidate,
              "tau_initial": tau(initial.score_features(features[exact]), slice_lengths),
              "needed_gain": verdict.needed, "better": verdict.better, "seconds": time.perf_counter() - started,
              "cpu_seconds": time.process_time() - cpu_started}
    if fault in ("corrupt", "worse"):
        report["better"] = True  # claimed, so that the swap path runs
    (staged / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(learn.candidate, ignore_errors=True)
    os.replace(staged, learn.candidate)
    return report
