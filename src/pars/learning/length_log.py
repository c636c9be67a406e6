"""The length log: one JSON line per finished request, appended by `pars serve --learn` and `pars collect`.

A line holds what the prompt was (its text; with `embeddings` only the student's feature vector, for users who
may not keep prompts; with `hash` only its SHA-256, which counts lengths but trains nothing), its prompt tokens,
the finish reason, and the length: `response_tokens` when the response ended by itself, `response_tokens_at_least`
when it was cut (by `max_tokens`, an abort, a disconnect): a censored length is never written as a label, so
an exact line stays valid input to `pars train --data` and a censored one is skipped there.

Crash-safe: each line is one `write` on a file opened for appending, so concurrent writers (several processes
on one directory) never interleave within a line, and a line torn by a crash is skipped with a warning when the
log is read. Bounded: past `max_bytes` the file is renamed to `.1` (older ones shift up, the oldest past `keep` is
deleted), under a lock file. A write that fails (full disk) is counted, never raised into the request.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pars.data.records import CENSORED_KEY

log = logging.getLogger(__name__)

PROMPT_MODES = ("text", "hash", "embeddings")
EXACT_KEY = "response_tokens"


@dataclass(frozen=True)
class LoggedLength:
    """One finished request as the learner reads it back: text or features, and a length that may be censored."""

    prompt: str | None
    features: tuple[float, ...] | None
    tokens: int
    censored: bool
    finish_reason: str
    prompt_tokens: int | None


class LengthLog:
    """Appends length lines to `path` (created with its parent directories), rotating past `max_bytes`."""

    def __init__(self, path: str | Path, prompts: str = "text", max_bytes: int = 64 << 20, keep: int = 4) -> None:
        if prompts not in PROMPT_MODES:
            raise ValueError(f"prompt mode {prompts!r}: choose one of {', '.join(PROMPT_MODES)}")
        if max_bytes < 1 or keep < 0:
            raise ValueError("max_bytes must be >= 1 and keep >= 0")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.prompts = prompts
        self.max_bytes = max_bytes
        self.keep = keep
        self.written = 0
        self.write_errors = 0
        self._end_torn_line()

    def append(self, prompt: str, response_tokens: int, model: str | None, *, censored: bool = False,
               finish_reason: str = "stop", prompt_tokens: int | None = None,
               features: Sequence[float] | None = None) -> bool:
        """Write one line; False (counted in `write_errors`, warned) if the file system refused it."""
        row: dict[str, object] = {**self._prompt_fields(prompt, features),
                                  CENSORED_KEY if censored else EXACT_KEY: int(response_tokens),
                                  "finish_reason": finish_reason, "prompt_tokens": prompt_tokens,
                                  "model": model or "unknown", "ts": round(time.time(), 3)}
        line = (json.dumps(row, ensure_ascii=False) + "\n").encode()
        try:
            self._rotate_if_full()
            self._write(line)
        except OSError as err:
            self.write_errors += 1
            log.warning("length log %s: line not written (%s); serving goes on", self.path, err)
            return False
        self.written += 1
        return True

    def _end_torn_line(self) -> None:
        """A log a crash left mid-line gets its newline now, so the next line is not glued to the torn one."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(-1, os.SEEK_END)
                torn = handle.read(1) != b"\n"
            if torn:
                self._write(b"\n")
        except OSError:  # no file yet, an empty one, a device; a failing disk shows at the first append
            return

    def _write(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def size(self) -> int:
        """Bytes on disk, rotated files included."""
        return sum(file.stat().st_size for file in log_files(self.path) if file.exists())

    def _prompt_fields(self, prompt: str, features: Sequence[float] | None) -> dict[str, object]:
        if self.prompts == "hash":
            return {"prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest()}
        if self.prompts == "embeddings":
            if features is None:
                raise ValueError("the embeddings store needs the prompt's features")
            return {"features": [round(float(x), 5) for x in features]}
        return {"prompt": prompt}

    def _rotate_if_full(self) -> None:
        try:
            if self.path.stat().st_size < self.max_bytes:
                return
        except FileNotFoundError:
            return
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self.path.exists() or self.path.stat().st_size < self.max_bytes:
                return  # another writer rotated it
            for older in range(self.keep, 0, -1):
                source = rotated(self.path, older - 1) if older > 1 else self.path
                if source.exists():
                    os.replace(source, rotated(self.path, older))
            if self.keep == 0:
                self.path.unlink()


def rotated(path: Path, number: int) -> Path:
    return path.with_name(f"{path.name}.{number}")


def log_files(path: str | Path) -> list[Path]:
    """The log's files, oldest first: `.N` ... `.1`, then the live file."""
    path = Path(path)
    older = sorted((p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
                   key=lambda p: -int(p.suffix[1:]))
    return [*older, *([path] if path.exists() else [])]


def read_lengths(path: str | Path) -> tuple[list[LoggedLength], int]:
    """Every usable line of the log, oldest first, and how many lines were skipped (torn, corrupt, or with
    neither text nor features): a damaged log loses only its damaged lines."""
    lengths: list[LoggedLength] = []
    skipped = 0
    for file in log_files(path):
        for row in _rows(file):
            if row is None:
                skipped += 1
                continue
            lengths.append(row)
    return lengths, skipped


def _rows(file: Path) -> Iterator[LoggedLength | None]:
    try:
        data = file.read_bytes()
    except OSError as err:
        log.warning("length log %s unreadable (%s): skipped", file, err)
        return
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        row = _parsed(line)
        if row is None:
            log.warning("%s:%d: skipped an unreadable length line", file, number)
        yield row


def _parsed(line: bytes) -> LoggedLength | None:
    try:
        row = json.loads(line)
    except ValueError:
        return None
    if not isinstance(row, dict):
        return None
    censored = CENSORED_KEY in row and EXACT_KEY not in row
    tokens = row.get(CENSORED_KEY if censored else EXACT_KEY)
    prompt, features = row.get("prompt"), row.get("features")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        return None
    if not isinstance(prompt, str) and not (isinstance(features, list) and features):
        return None
    try:
        vector = tuple(float(x) for x in features) if isinstance(features, list) else None
    except (TypeError, ValueError):
        return None
    prompt_tokens = row.get("prompt_tokens")
    return LoggedLength(prompt if isinstance(prompt, str) else None, vector, tokens, censored,
                        str(row.get("finish_reason", "stop")),
                        prompt_tokens if isinstance(prompt_tokens, int) else None)
