"""The learning directory of `pars serve --learn DIR`: the log, the live scorer and where it came from.

    DIR/lengths.jsonl (+ .1, .2, ...)  the length log (pars.learning.length_log)
    DIR/initial/                       the student the server first started from (never changed)
    DIR/current/                       the live scorer: what a restart serves, loadable by `pars eval --predictor`
    DIR/previous/                      the scorer before the last swap (a rollback brings it back)
    DIR/candidate/                     a refit's output, until the guard takes or drops it
    DIR/lineage.jsonl                  one line per start, swap, rejected swap and rollback

A swap replaces directories by rename, so `current` is always a whole checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from pars.predictor.checkpoint import CheckpointError
from pars.predictor.student import StaticStudent


@dataclass(frozen=True)
class LearnDir:
    root: Path

    @property
    def log(self) -> Path:
        return self.root / "lengths.jsonl"

    @property
    def initial(self) -> Path:
        return self.root / "initial"

    @property
    def current(self) -> Path:
        return self.root / "current"

    @property
    def previous(self) -> Path:
        return self.root / "previous"

    @property
    def candidate(self) -> Path:
        return self.root / "candidate"

    @property
    def lineage(self) -> Path:
        return self.root / "lineage.jsonl"

    def prepare(self, served: Path) -> Path:
        """DIR/current: on the first start a copy of `served` (kept as DIR/initial); a later start serves what it
        learned, and one whose current was removed starts again from initial. Raises
        `CheckpointError` unless the scorer is a distilled student: only a student's head is refitted."""
        self.root.mkdir(parents=True, exist_ok=True)
        for source, directory in ((served, self.initial), (self.initial, self.current)):
            if not directory.exists():
                try:
                    StaticStudent.load(source)  # before copying anything
                except CheckpointError as err:
                    raise CheckpointError(f"--learn refits a distilled student, and {source} cannot be one ({err}); "
                                          f"serve a student (`pars distill`, or --scorer student)") from None
                staged = directory.with_name(directory.name + ".tmp")
                shutil.rmtree(staged, ignore_errors=True)
                shutil.copytree(source, staged)
                os.replace(staged, directory)
        try:
            StaticStudent.load(self.current)
        except CheckpointError as err:
            raise CheckpointError(f"--learn {self.root}: the live scorer cannot be loaded ({err}); move "
                                  f"{self.current} away to start again from {self.initial}") from None
        self.record("start", served=str(served))
        return self.current

    def promote(self) -> None:
        """candidate -> current, current -> previous (the old previous is dropped)."""
        shutil.rmtree(self.previous, ignore_errors=True)
        os.replace(self.current, self.previous)
        os.replace(self.candidate, self.current)

    def roll_back(self) -> None:
        """previous -> current; the rolled-back scorer is kept as candidate, for a look."""
        shutil.rmtree(self.candidate, ignore_errors=True)
        os.replace(self.current, self.candidate)
        os.replace(self.previous, self.current)

    def record(self, event: str, **fields: object) -> None:
        line = json.dumps({"event": event, "ts": round(time.time(), 3), **fields}) + "\n"
        with open(self.lineage, "a", encoding="utf-8") as handle:
            handle.write(line)
