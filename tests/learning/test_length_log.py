"""The length log: exact and censored lines, rotation, damaged files, a full disk (the real /dev/full)."""

from __future__ import annotations

import json

import pytest

from pars.data.loaders import load_jsonl
from pars.learning.length_log import LengthLog, log_files, read_lengths


def test_an_exact_line_is_training_data_and_a_censored_line_is_a_lower_bound_never_a_label(tmp_path):
    log = LengthLog(tmp_path / "lengths.jsonl")
    log.append("Write a poem.", 120, "m", finish_reason="stop", prompt_tokens=9)
    log.append("Write an essay.", 64, "m", censored=True, finish_reason="length", prompt_tokens=10)
    rows, skipped = read_lengths(log.path)
    assert skipped == 0
    assert [(r.prompt, r.tokens, r.censored, r.finish_reason, r.prompt_tokens) for r in rows] == [
        ("Write a poem.", 120, False, "stop", 9), ("Write an essay.", 64, True, "length", 10)]
    lines = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert "response_tokens" not in lines[1] and lines[1]["response_tokens_at_least"] == 64
    assert [r.response_tokens for r in load_jsonl(log.path)] == [120]  # pars train --data reads the exact one


def test_the_embeddings_store_keeps_no_text_and_the_hash_store_trains_nothing(tmp_path):
    features = LengthLog(tmp_path / "f.jsonl", "embeddings")
    features.append("private words", 50, None, features=[0.5, -1.25, 2.0])
    assert "private" not in features.path.read_text()
    (row,), _ = read_lengths(features.path)
    assert row.prompt is None and row.features == (0.5, -1.25, 2.0)
    hashed = LengthLog(tmp_path / "h.jsonl", "hash")
    hashed.append("private words", 50, None)
    assert "private" not in hashed.path.read_text()
    assert read_lengths(hashed.path) == ([], 1)


def test_rotation_bounds_the_log_and_reading_keeps_the_oldest_first(tmp_path):
    log = LengthLog(tmp_path / "lengths.jsonl", max_bytes=300, keep=2)
    for i in range(40):
        assert log.append(f"prompt number {i}", i + 1, "m")
    files = log_files(log.path)
    assert [f.name for f in files] == ["lengths.jsonl.2", "lengths.jsonl.1", "lengths.jsonl"]
    assert all(f.stat().st_size < 300 + 200 for f in files)
    tokens = [r.tokens for r in read_lengths(log.path)[0]]
    assert tokens == sorted(tokens) and tokens[-1] == 40 and len(tokens) < 40  # the oldest were dropped
    assert log.size() == sum(f.stat().st_size for f in files)


def test_a_torn_or_corrupt_line_loses_only_itself(tmp_path):
    log = LengthLog(tmp_path / "lengths.jsonl")
    log.append("first", 10, "m")
    with log.path.open("ab") as handle:
        handle.write(b'{"prompt": "broken", "respo\n\xff\xfe not json\n')
    log.append("second", 20, "m")
    with log.path.open("ab") as handle:
        handle.write(b'{"prompt": "torn by a cra')
    rows, skipped = read_lengths(log.path)
    assert [r.prompt for r in rows] == ["first", "second"] and skipped == 3
    LengthLog(log.path).append("after the restart", 30, "m")  # a restarted writer ends the torn line first
    rows, skipped = read_lengths(log.path)
    assert [r.prompt for r in rows] == ["first", "second", "after the restart"] and skipped == 3


def test_a_full_disk_is_counted_not_raised():
    log = LengthLog("/dev/full")
    assert log.append("a prompt", 10, "m") is False
    assert (log.written, log.write_errors) == (0, 1)


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="prompt mode"):
        LengthLog(tmp_path / "x.jsonl", "everything")
    with pytest.raises(ValueError, match="features"):
        LengthLog(tmp_path / "x.jsonl", "embeddings").append("p", 1, None)
