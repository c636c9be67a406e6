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
