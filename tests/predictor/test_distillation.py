"""Distillation: the loss on a hand-computed case, the prompts it may use, and a student that learns its
teacher's order (real MiniLM teacher, real bundled prompts)."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

from pars.data.dedup import NearDuplicateIndex
from pars.data.splits import normalise_prompt
from pars import jobs
from pars.jobs import DistillJob, distillation_prompts
from pars.predictor import Predictor
from pars.predictor.distillation import PAIR_GAP, DistillSettings, distillation_loss, train_student


def test_distillation_loss_is_squared_error_plus_the_logistic_loss_of_the_ordered_pairs():
    scores = torch.tensor([0.0, 1.0, 3.0])
    targets = torch.tensor([0.0, 2.0, 2.0 + PAIR_GAP / 2])  # the last two are too close to be ordered
    squared = (0 + 1 + (1 - PAIR_GAP / 2) ** 2) / 3
    pairs = [scores[1] - scores[0], scores[2] - scores[0]]  # (1 over 0), (2 over 0)
    logistic = sum(math.log1p(math.exp(-float(m))) for m in pairs) / 2
    assert float(distillation_loss(scores, targets, rank_weight=2.0)) == pytest.approx(squared + 2 * logistic, rel=1e-5)
    assert float(distillation_loss(scores, targets, rank_weight=0.0)) == pytest.approx(squared, rel=1e-5)


def test_no_bundled_validation_or_test_prompt_nor_a_copy_of_one_is_distilled_on(tmp_path):
    teacher_split = Predictor.untrained(seed=0).config.split
    job = DistillJob("unused")
    train, val = distillation_prompts(job, teacher_split)
    held_out = {normalise_prompt(p) for p in val} | {normalise_prompt(r.prompt) for r in jobs.test_records(Predictor.untrained())}
    assert not held_out & {normalise_prompt(p) for p in train}
    assert len(train) > 50_000 and all(teacher_split.part_of(p) == "val" for p in val)
    copies = NearDuplicateIndex(sorted(held_out))  # the extra set (the last prompts) holds no copy of them
    assert sum(p in copies for p in train[-3000:]) == 0


def test_a_student_learns_its_teachers_order_and_speaks_on_its_scale():
    teacher = Predictor.untrained(seed=0)
    train, val = distillation_prompts(DistillJob("unused", max_prompts=600), teacher.config.split)
    scores, val_scores = teacher.score(train), teacher.score(val)
    settings = DistillSettings(vocabulary_words=4000, buckets=256, hidden=32, epochs=4)
    student, result = train_student(teacher, train, scores, val, val_scores, settings)
    learned = kendalltau(student.score(train), scores).statistic
    assert learned > 0.3, f"student vs teacher on its own training prompts: tau {learned:.2f}"
    assert abs(float(np.mean(student.score(train))) - float(np.mean(scores))) < np.std(scores)
    assert [e["epoch"] for e in result.epochs] == [1, 2, 3, 4]

