"""The distilled student: what `pars distill` writes loads everywhere, scores the same however it is
batched, and a corrupt or mismatched checkpoint is refused with one CheckpointError."""

import json
import shutil

import numpy as np
import pytest

from pars.predictor import CheckpointError, Predictor, StaticStudent, load_ranker
from pars.predictor.loading import serving_checkpoint
from pars.predictor.checkpoint import check_checkpoint
from pars.predictor.config import PredictorConfig

PROMPTS = ["Write a haiku about rain.", "Explain, step by step, how a compiler turns source code into machine code.",
           "hi", "!!!", "Ünïcödé prompt with ☃ and 漢字"]


def test_load_ranker_opens_a_student_and_its_scores_do_not_depend_on_batching(student_dir):
    student = load_ranker(student_dir)
    assert isinstance(student, StaticStudent) and student.cheap
    together = student.score(PROMPTS)
    alone = np.array([student.score([p])[0] for p in PROMPTS])
    np.testing.assert_allclose(together, alone, rtol=1e-6)
    assert np.isfinite(together).all() and len(set(together.tolist())) == len(PROMPTS)


def test_a_saved_student_scores_exactly_as_before(student_dir, tmp_path):
    student = load_ranker(student_dir)
    again = load_ranker(student.save(tmp_path / "copy"))
    np.testing.assert_array_equal(student.score(PROMPTS), again.score(PROMPTS))


def test_the_student_records_its_teacher_split_and_score_quantiles(student_dir):
    config = PredictorConfig.read(student_dir)
    teacher = PredictorConfig.read(student_dir.parent)
    assert config.kind == "static" and config.split == teacher.split
    assert len(config.score_quantiles) == 101 and config.score_quantiles == sorted(config.score_quantiles)
    assert config.training["train_prompts"] == 400 and config.training["teacher"] == str(student_dir.parent.resolve())


def test_a_prompt_with_no_words_scores_from_its_length_alone(student_dir):
    student = load_ranker(student_dir)
    assert np.isfinite(student.score(["   \t "])).all()


@pytest.mark.parametrize("damage", ["vocabulary", "weights_shape", "kind", "weights_bytes"])
def test_a_corrupt_or_mismatched_student_is_refused_with_one_checkpoint_error(student_dir, tmp_path, damage):
    broken = shutil.copytree(student_dir, tmp_path / "broken")
    if damage == "vocabulary":
        (broken / "vocabulary.json").write_text("{not json")
    elif damage == "weights_shape":
        vocabulary = json.loads((broken / "vocabulary.json").read_text())
        vocabulary["buckets"] += 1  # the table no longer has one row per vocabulary row
        (broken / "vocabulary.json").write_text(json.dumps(vocabulary))
    elif damage == "kind":
        config = json.loads((broken / "pars_config.json").read_text())
        (broken / "pars_config.json").write_text(json.dumps({**config, "kind": "mystery"}))
    else:
        (broken / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=str(broken)):
        load_ranker(broken)


def test_the_encoder_loader_refuses_a_student_and_says_where_the_teacher_is(student_dir):
    check_checkpoint(student_dir)
    with pytest.raises(CheckpointError, match="distilled student"):
        Predictor.load(student_dir)


def test_serving_prefers_the_student_inside_a_teacher_unless_told_otherwise(student_dir, tmp_path):
    teacher = student_dir.parent
    assert serving_checkpoint(teacher) == student_dir
    assert serving_checkpoint(teacher, "teacher") == teacher
    assert serving_checkpoint(student_dir, "student") == student_dir
    lone = shutil.copytree(teacher, tmp_path / "lone", ignore=shutil.ignore_patterns("student"))
    assert serving_checkpoint(lone) == lone
    with pytest.raises(CheckpointError, match="pars distill"):
        serving_checkpoint(lone, "student")
