"""Loaders: the bundled multi-model files and user JSONL files, both into `LengthRecord`s."""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

from pars.data.records import CENSORED_KEY, MAX_RESPONSE_TOKENS, DataError, LengthRecord

log = logging.getLogger(__name__)

LABEL_COLUMNS = ("tok_llama3", "tok_cl100k", "tok_mistral_v1", "tok_qwen", "n_words", "n_chars")
GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)  # not gzip, truncated, corrupt stream


def _open_binary(path: Path) -> IO[bytes]:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    try:
        return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")
    except OSError as err:
        raise DataError(f"{path}: cannot be opened ({err.strerror or err})") from None


def _gzip_error(path: Path, err: Exception) -> DataError:
    return DataError(f"{path}: not a readable gzip file ({err or type(err).__name__}); re-download or re-compress it")


def _check_length(where: str, length: int) -> int:
    if length < 0:
        raise DataError(f"{where}: 'response_tokens' must be a non-negative integer, got {length}")
    if length > MAX_RESPONSE_TOKENS:
        raise DataError(f"{where}: 'response_tokens' is too large ({length}; at most 2**63 - 1)")
    return length


def _parse_json_row(path: Path, line_no: int, line: str) -> LengthRecord | None:
    """One row as a record; None for a censored length (a lower bound, pars.learning's length log), never a label."""
    where = f"{path}:{line_no}"
    try:
        row = json.loads(line)
    except ValueError as err:  # JSONDecodeError, or an integer of over 4300 digits
        raise DataError(f"{where}: invalid JSON ({getattr(err, 'msg', err)})") from None
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    if "response_tokens" not in row and CENSORED_KEY in row:
        return None
    for field in ("prompt", "response_tokens"):
        if field not in row:
            raise DataError(f"{where}: missing field '{field}'")
    prompt, length = row["prompt"], row["response_tokens"]
    if not isinstance(prompt, str):
        raise DataError(f"{where}: 'prompt' must be a string, got {type(prompt).__name__}")
    if isinstance(length, bool) or not isinstance(length, int):
        raise DataError(f"{where}: 'response_tokens' must be a non-negative integer, got {length!r}")
    return LengthRecord(
        prompt=prompt,
        response_tokens=_check_length(where, length),
        model=str(row.get("model", "unknown")),
        source=str(row.get("source", "user")),
        prompt_id=str(row.get("prompt_id", f"{path.name}:{line_no}")),
    )


def _numbered_lines(path: Path, handle: IO[bytes]) -> Iterator[tuple[int, str]]:
    """Non-blank lines decoded one by one, so an undecodable byte is reported at its own line.

    A UTF-8 byte order mark at the start of the file is dropped; a corrupt .gz file raises `DataError`.
    """
    try:
        for line_no, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{path}:{line_no}: not valid UTF-8 ({err.reason})") from None
            if line.strip():
                yield line_no, line
    except GZIP_ERRORS as err:
        raise _gzip_error(path, err) from None


def load_jsonl(path: str | Path, skip_bad: bool = False) -> list[LengthRecord]:
    """Read `{"prompt": str, "response_tokens": int, ...}` lines (plain or .gz).

    A censored row (`response_tokens_at_least`, from `pars serve --learn`) is left out: it is not a label.
    A bad row raises `DataError` naming file and line; with `skip_bad` it is skipped and counted in the log.
    A last line that does not parse and has no newline is a torn append (a writer, such as `pars
    collect`, stopped mid-line): it is skipped with a warning, never fatal.
    """
    path = Path(path)
    records: list[LengthRecord] = []
    skipped = censored = 0
    with _open_binary(path) as handle:
        for line_no, line in _numbered_lines(path, handle):
            try:
                record = _parse_json_row(path, line_no, line)
                if record is None:
                    censored += 1
                    continue
                records.append(record)
            except DataError as err:
                if not line.endswith("\n"):
                    log.warning("%s:%d: skipped a torn last line (%s)", path, line_no, err)
                    continue
                if not skip_bad:
                    raise
                skipped += 1
                log.warning("skipped %s", err)
    if skipped:
        log.warning("%s: skipped %d bad rows, kept %d", path, skipped, len(records))
    if censored:
        log.info("%s: left out %d censored lengths (lower bounds, not labels)", path, censored)
    if not records:
        raise DataError(f"{path}: no usable rows")
    return records


def load_prompt_texts(path: str | Path) -> list[str]:
    """The `"prompt"` strings of a JSONL file (plain or .gz; other fields ignored, no length needed): prompts to
    distil a student on. A row that is not an object with a string prompt raises `DataError` naming its line."""
    path = Path(path)
    prompts: list[str] = []
    with _open_binary(path) as handle:
        for line_no, line in _numbered_lines(path, handle):
            try:
                row = json.loads(line)
            except ValueError as err:
                raise DataError(f"{path}:{line_no}: invalid JSON ({getattr(err, 'msg', err)})") from None
            if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
                raise DataError(f"{path}:{line_no}: expected a JSON object with a string 'prompt'")
            prompts.append(row["prompt"])
    if not prompts:
        raise DataError(f"{path}: no prompts")
    return prompts


def _read_prompts(path: Path) -> dict[str, dict]:
    prompts = {}
    with _open_binary(path) as handle:
        for line_no, line in _numbered_lines(path, handle):
            try:
                row = json.loads(line)
                prompts[row["prompt_id"]] = row
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise DataError(f"{path}:{line_no}: bad prompt row ({err})") from None
    return prompts


def _csv_rows(path: Path, columns: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV file (plain or .gz) that must have `columns`; read errors raise `DataError`."""
    try:
        with io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if missing := [c for c in columns if c not in (reader.fieldnames or ())]:
                raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
            yield from enumerate(reader, start=2)
    except GZIP_ERRORS as err:
        raise _gzip_error(path, err) from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not valid UTF-8 ({err.reason})") from None


def load_bundled(
    data_dir: str | Path,
    label: str = "tok_llama3",
    models: Iterable[str] | None = None,
    include_variants: bool = False,
) -> list[LengthRecord]:
    """Join `prompts.jsonl` and `lengths.csv.gz` on prompt_id; drop `variant=1` runs unless asked.

    `models=None` keeps every model; otherwise only the named ones (unknown names raise).
    """
    data_dir = Path(data_dir)
    if label not in LABEL_COLUMNS:
        raise DataError(f"unknown label column {label!r}; choose one of {', '.join(LABEL_COLUMNS)}")
    prompts = _read_prompts(data_dir / "prompts.jsonl")
    wanted = set(models) if models is not None else None
    records: list[LengthRecord] = []
    seen_models: set[str] = set()
    lengths_path = data_dir / "lengths.csv.gz"
    for line_no, row in _csv_rows(lengths_path, ("prompt_id", "model", "source", "variant", label)):
        seen_models.add(row["model"])
        if row["variant"] == "1" and not include_variants:
            continue
        if wanted is not None and row["model"] not in wanted:
            continue
        prompt = prompts.get(row["prompt_id"])
        if prompt is None:
            raise DataError(f"{lengths_path}:{line_no}: prompt_id {row['prompt_id']} not in prompts.jsonl")
        try:
            length = _check_length(f"{lengths_path}:{line_no}", int(row[label]))
        except ValueError:
            raise DataError(f"{lengths_path}:{line_no}: {label} is not an integer: {row[label]!r}") from None
        records.append(
            LengthRecord(prompt["prompt"], length, row["model"], row["source"], row["prompt_id"])
        )
    if wanted is not None and (unknown := wanted - seen_models):
        raise DataError(f"unknown model(s) {', '.join(sorted(unknown))}; see {data_dir / 'models.csv'}")
    return records


def load_records(path: str | Path, label: str = "tok_llama3", models: Iterable[str] | None = None,
                 skip_bad: bool = False) -> list[LengthRecord]:
    """A bundled data directory or a JSONL file, filtered to `models` when given."""
    path = Path(path)
    if path.is_dir():
        return load_bundled(path, label=label, models=models)
    records = load_jsonl(path, skip_bad=skip_bad)
    if models is not None:
        wanted = set(models)
        records = [r for r in records if r.model in wanted]
        if not records:
            raise DataError(f"{path}: no rows for model(s) {', '.join(sorted(wanted))}")
    return records
