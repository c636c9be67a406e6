import csv
import gzip
import json
from collections import Counter

import pytest

from pars.data import DataError, load_bundled, load_jsonl
from pars.paths import bundled_data_dir


def test_bundled_loader_joins_prompts_and_drops_variants():
    records = load_bundled(bundled_data_dir(), models=["gpt4_1106_preview", "vicuna-13b-v1.5"])
    assert {r.model for r in records} == {"gpt4_1106_preview", "vicuna-13b-v1.5"}
    expected = {(row["source"], row["model"]): int(row["n_rows"]) for row in
                csv.DictReader((bundled_data_dir() / "models.csv").open())}
    counts = Counter((r.source, r.model) for r in records)
    assert counts == {key: n for key, n in expected.items() if key[1] in {"gpt4_1106_preview", "vicuna-13b-v1.5"}}
    assert all(r.prompt and r.response_tokens >= 0 for r in records)
    assert not any(r.model.endswith("_verbose") for r in load_bundled(bundled_data_dir()))
    assert any(r.model.endswith("_verbose") for r in load_bundled(bundled_data_dir(), include_variants=True))


def test_label_column_is_selectable():
    words = load_bundled(bundled_data_dir(), label="n_words", models=["gpt4_1106_preview"])
    tokens = load_bundled(bundled_data_dir(), models=["gpt4_1106_preview"])
    assert [r.response_tokens for r in words] != [r.response_tokens for r in tokens]
    with pytest.raises(DataError, match="unknown label column"):
        load_bundled(bundled_data_dir(), label="nope")


def test_unknown_model_is_named():
    with pytest.raises(DataError, match="no-such-model"):
        load_bundled(bundled_data_dir(), models=["no-such-model"])


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ('{"prompt": "hi"}', "missing field 'response_tokens'"),
        ('{"prompt": "hi", "response_tokens": -3}', "non-negative integer"),
        ('{"prompt": "hi", "response_tokens": 2.5}', "non-negative integer"),
        ('{"prompt": 12, "response_tokens": 3}', "'prompt' must be a string"),
        ('{"prompt": "hi", "response_tokens": 3', "invalid JSON"),
        ('[1, 2]', "expected a JSON object"),
    ],
)
def test_bad_rows_fail_with_file_and_line(tmp_path, bad_line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "ok", "response_tokens": 5}\n' + bad_line + "\n")
    with pytest.raises(DataError, match=rf"bad.jsonl:2: .*{message}"):
        load_jsonl(path)


def test_skip_bad_rows_keeps_the_good_ones(tmp_path, caplog):
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"prompt": "ok", "response_tokens": 5}\nnot json\n{"prompt": "b", "response_tokens": 7, "model": "m"}\n')
    records = load_jsonl(path, skip_bad=True)
    assert [(r.prompt, r.response_tokens) for r in records] == [("ok", 5), ("b", 7)]
    assert "skipped 1 bad rows" in caplog.text


def test_undecodable_and_gzipped_files(tmp_path):
    raw = tmp_path / "latin.jsonl"
    raw.write_bytes(b'{"prompt": "ok", "response_tokens": 1}\n{"prompt": "caf\xe9", "response_tokens": 1}\n')
    with pytest.raises(DataError, match="latin.jsonl:2: not valid UTF-8"):
        load_jsonl(raw)
    packed = tmp_path / "rows.jsonl.gz"
    with gzip.open(packed, "wt") as f:
        f.write(json.dumps({"prompt": "x", "response_tokens": 4}) + "\n")
    assert load_jsonl(packed)[0].response_tokens == 4


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_jsonl(tmp_path / "absent.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no usable rows"):
        load_jsonl(tmp_path / "empty.jsonl")


def test_a_utf8_byte_order_mark_at_the_start_of_a_file_is_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"prompt": "a", "response_tokens": 3}\n{"prompt": "b", "response_tokens": 4}\n')
    assert [(r.prompt, r.response_tokens) for r in load_jsonl(path)] == [("a", 3), ("b", 4)]
    packed = tmp_path / "bom.jsonl.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    assert len(load_jsonl(packed)) == 2


ROWS_GZ = gzip.compress(b'{"prompt": "a", "response_tokens": 3}\n' * 50, mtime=0)


@pytest.mark.parametrize("content", [b"not gzip at all", ROWS_GZ[:40]], ids=["not-gzip", "truncated"])
def test_a_corrupt_or_truncated_gz_file_is_a_data_error_naming_the_file(tmp_path, content):
    path = tmp_path / "rows.jsonl.gz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"rows.jsonl.gz: not a readable gzip file"):
        load_jsonl(path)


def test_a_corrupt_bundled_lengths_file_is_a_data_error(tmp_path):
    (tmp_path / "prompts.jsonl").write_text('{"prompt_id": "p1", "prompt": "a"}\n')
    (tmp_path / "lengths.csv.gz").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"lengths.csv.gz: not a readable gzip file"):
        load_bundled(tmp_path)


@pytest.mark.parametrize("length", [2**63, 10**30])
def test_response_tokens_beyond_a_64_bit_integer_are_rejected_with_file_and_line(tmp_path, length):
    path = tmp_path / "huge.jsonl"
    path.write_text('{"prompt": "ok", "response_tokens": 5}\n' + f'{{"prompt": "a", "response_tokens": {length}}}\n')
    with pytest.raises(DataError, match=r"huge.jsonl:2: 'response_tokens' .*too large"):
        load_jsonl(path)
    assert load_jsonl(path, skip_bad=True)[0].response_tokens == 5


def test_a_torn_last_line_of_a_length_log_is_skipped_but_a_bad_line_inside_is_an_error(tmp_path):
    from pars.data import DataError, load_records

    good = '{"prompt": "a", "response_tokens": 3}\n{"prompt": "b", "response_tokens": 5}\n'
    torn = tmp_path / "torn.jsonl"
    torn.write_text(good + '{"prompt": "c", "respon')  # a writer stopped mid-line
    assert [r.prompt for r in load_records(torn)] == ["a", "b"]
    inside = tmp_path / "inside.jsonl"
    inside.write_text('{"prompt": "c", "respon\n' + good)
    with pytest.raises(DataError, match=":1:"):
        load_records(inside)
