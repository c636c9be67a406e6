import json
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from pars.data.splits import PromptSplit
from pars.predictor import CheckpointError, EncoderNotFound, Predictor, PredictorConfig

PROMPTS = ["Write a detailed essay on the causes of World War I.", "What is 2 + 2?", "", "x " * 5000]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    predictor = Predictor.untrained(seed=1)
    directory = predictor.save(tmp_path_factory.mktemp("ckpt") / "predictor")
    return predictor, directory


def test_save_load_round_trip_gives_identical_scores(saved):
    predictor, directory = saved
    loaded = Predictor.load(directory, precision="fp32")
    np.testing.assert_array_equal(predictor.score(PROMPTS), loaded.score(PROMPTS))
    assert Predictor.load(directory).precision in ("fp32", "bf16")  # "auto": bf16 where the CPU has it
    assert loaded.config.max_length == 128
    assert {p.name for p in directory.iterdir()} >= {"pars_config.json", "config.json", "model.safetensors",
                                                     "head.safetensors", "tokenizer.json"}


def test_scores_do_not_depend_on_batching(saved):
    predictor, _ = saved
    np.testing.assert_allclose(predictor.score(PROMPTS, batch_size=1), predictor.score(PROMPTS, batch_size=4), atol=1e-5)


def test_empty_prompt_list_and_non_string_are_rejected(saved):
    predictor, _ = saved
    with pytest.raises(ValueError, match="at least one prompt"):
        predictor.score([])
    with pytest.raises(TypeError, match="strings"):
        predictor.score([None])


def test_corrupt_weights_fail_with_a_clear_error(saved, tmp_path):
    _, directory = saved
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in directory.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="corrupt weights.*pars train"):
        Predictor.load(broken)


def test_missing_files_and_bad_config_fail_with_a_clear_error(saved, tmp_path):
    with pytest.raises(CheckpointError, match="no predictor checkpoint"):
        Predictor.load(tmp_path / "nowhere")
    _, directory = saved
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "pars_config.json").write_text((directory / "pars_config.json").read_text())
    with pytest.raises(CheckpointError, match="has no config.json"):
        Predictor.load(partial)
    for item in directory.iterdir():
        (partial / item.name).write_bytes(item.read_bytes())
    (partial / "head.safetensors").unlink()
    with pytest.raises(CheckpointError, match="has no head.safetensors"):
        Predictor.load(partial)
    (partial / "head.safetensors").write_bytes((directory / "head.safetensors").read_bytes())
    (partial / "pars_config.json").write_text(json.dumps({"pooling": "mean", "unexpected": 1}))
    with pytest.raises(CheckpointError, match="unreadable config"):
        Predictor.load(partial)


def test_unknown_encoder_is_never_downloaded(tmp_path):
    with pytest.raises(EncoderNotFound, match="never downloaded"):
        Predictor.untrained("bert-base-uncased")


@pytest.mark.parametrize(("name", "content", "message"), [
    ("pars_config.json", b"garbage", "unreadable pars_config.json"),
    ("pars_config.json", b"[]", "unreadable pars_config.json"),
    ("config.json", b"\xff\xfe", "unreadable config.json"),
    ("model.safetensors", b"not a safetensors file", "corrupt weights"),
    ("head.safetensors", b"not a safetensors file", "corrupt weights"),
])
def test_the_cheap_checkpoint_check_catches_corrupt_files_before_any_loading(saved, tmp_path, name, content, message):
    from pars.predictor.checkpoint import check_checkpoint

    _, directory = saved
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in directory.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    (broken / name).write_bytes(content)
    with pytest.raises(CheckpointError, match=f"{message}.*pars train"):
        check_checkpoint(broken)
    assert check_checkpoint(directory) == directory


def test_a_checkpoint_gives_back_the_prompt_split_it_was_trained_with(saved, tmp_path):
    predictor, _ = saved
    split = PromptSplit(seed=7, val_fraction=0.15, test_fraction=0.25)
    config = replace(predictor.config, training={"split": split.to_dict()})  # as `pars train` records it
    directory = Predictor(config, predictor.tokenizer, predictor.ranker).save(tmp_path / "split")
    assert PredictorConfig.read(directory).split == split
    assert Predictor.load(directory).config.split == split


def test_a_checkpoint_without_a_recorded_split_gives_the_training_default(saved):
    _, directory = saved
    assert PredictorConfig.read(directory).split == PromptSplit()
    with pytest.raises(CheckpointError, match="no predictor checkpoint"):
        PredictorConfig.read(directory.parent / "nowhere")


def test_loading_and_scoring_change_no_process_wide_settings(saved, monkeypatch):
    _, directory = saved
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM"):
        monkeypatch.delenv(name, raising=False)  # unset, so a setdefault would show
    environment, threads = dict(os.environ), torch.get_num_threads()
    Predictor.load(directory).score(PROMPTS)
    assert dict(os.environ) == environment
    assert torch.get_num_threads() == threads


def test_a_checkpoint_is_a_hugging_face_encoder_that_transformers_opens_as_it_is(saved):
    from transformers import AutoModel

    predictor, directory = saved
    encoder = AutoModel.from_pretrained(directory, local_files_only=True).eval()
    batch = predictor.tokenize(PROMPTS[:2])
    with torch.no_grad():
        opened = encoder(**batch).last_hidden_state
        ours = predictor.ranker.eval().encoder(**batch).last_hidden_state
    torch.testing.assert_close(opened, ours)


def test_a_checkpoint_in_the_layout_before_pars_config_json_still_loads(saved, tmp_path):
    """Saved before 2026-12-06: PARS's settings in config.json, the encoder's in encoder_config.json, encoder
    and head weights together in model.safetensors (written here by hand, as that code wrote them)."""
    from safetensors.torch import save_file

    predictor, directory = saved
    legacy = tmp_path / "legacy"
    predictor.tokenizer.save_pretrained(legacy)
    (legacy / "config.json").write_text((directory / "pars_config.json").read_text())
    (legacy / "encoder_config.json").write_text(predictor.ranker.encoder.config.to_json_string())
    save_file({k: v.contiguous() for k, v in predictor.ranker.state_dict().items()}, str(legacy / "model.safetensors"))
    loaded = Predictor.load(legacy, precision="fp32")
    np.testing.assert_array_equal(predictor.score(PROMPTS), loaded.score(PROMPTS))
    (legacy / "encoder_config.json").unlink()
    with pytest.raises(CheckpointError, match="has no encoder_config.json"):
        Predictor.load(legacy)


def test_a_plain_hugging_face_model_is_refused_as_a_checkpoint_in_one_line():
    from pars.predictor import resolve_encoder
    from pars.predictor.checkpoint import holds_checkpoint

    encoder_dir = resolve_encoder(None)  # the packaged MiniLM: config.json and weights, no PARS settings
    assert not holds_checkpoint(encoder_dir)
    with pytest.raises(CheckpointError, match="is a Hugging Face model, not a PARS checkpoint"):
        Predictor.load(encoder_dir)
