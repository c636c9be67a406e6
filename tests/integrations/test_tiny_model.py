"""The tiny model builder: deterministic files, a tokenizer with a chat template."""

from __future__ import annotations

from pars.integrations.vllm import make_tiny_model


def test_building_twice_gives_identical_files(tiny_model, tmp_path):
    again = make_tiny_model(tmp_path / "again")
    names = sorted(p.name for p in tiny_model.iterdir())
    assert "model.safetensors" in names and "tokenizer.json" in names
    assert names == sorted(p.name for p in again.iterdir())
    for name in names:
        assert (tiny_model / name).read_bytes() == (again / name).read_bytes(), name


def test_tokenizer_round_trips_text_and_renders_chat(tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    text = "Write a haiku about the sea, please!"
    assert tokenizer.decode(tokenizer.encode(text), skip_special_tokens=True) == text
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                             add_generation_prompt=True)
    assert rendered.endswith("<|assistant|>") and "hi" in rendered
