"""The one place a ranker checkpoint is opened for scoring, whatever its kind (fine-tuned encoder or student)."""

from __future__ import annotations

from pathlib import Path
from typing import Union

from pars.predictor.checkpoint import CheckpointError, check_checkpoint, holds_checkpoint
from pars.predictor.config import PredictorConfig
from pars.predictor.model import Predictor
from pars.predictor.student import STUDENT_KIND, StaticStudent

Ranker = Union[Predictor, StaticStudent]  # both: `score(prompts, batch_size) -> np.ndarray` and `config`


def load_ranker(directory: str | Path, precision: str = "auto") -> Ranker:
    """The checkpoint's ranker; `precision` applies to a fine-tuned encoder (a student is always float32).
    Missing, corrupt or mismatched files raise `CheckpointError`."""
    directory = check_checkpoint(directory)
    if PredictorConfig.read(directory).kind == STUDENT_KIND:
        return StaticStudent.load(directory)
    return Predictor.load(directory, precision)


STUDENT_DIR = "student"  # where `pars distill` puts the student by default: inside its teacher's checkpoint
SCORERS = ("auto", "student", "teacher")


def serving_checkpoint(directory: str | Path, scorer: str = "auto") -> Path:
    """The checkpoint a server scores with, given `--predictor DIR`. "teacher": DIR itself; "student": the
    student in DIR/student (or DIR, if DIR is a student); "auto": the student where DIR holds one, else DIR.
    Auto prefers the student because serving measured it faster than the teacher at every load
    (docs/serving.md): scoring costs microseconds there, and no request waits for a score."""
    if scorer not in SCORERS:
        raise ValueError(f"scorer must be one of {', '.join(SCORERS)}, got {scorer!r}")
    directory = Path(directory)
    nested = directory / STUDENT_DIR
    if scorer == "teacher":
        return directory
    if holds_checkpoint(nested):
        return nested
    if scorer == "student" and not _is_student(directory):
        raise CheckpointError(f"no distilled student in {directory} (looked for {nested}): make one with "
                              f"`pars distill --teacher {directory}`")
    return directory


def _is_student(directory: Path) -> bool:
    try:
        return PredictorConfig.read(directory).kind == STUDENT_KIND
    except CheckpointError:
        return False
