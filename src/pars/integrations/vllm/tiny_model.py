"""A tiny random-weight Llama model with a locally trained BPE tokenizer, built offline.

Scheduling tests and benchmarks need a model vLLM can serve on 2 CPU cores; output is gibberish and
response lengths are set with `max_tokens` + `ignore_eos`, so only the engine's timing matters.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pars.paths import bundled_data_dir

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>")
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}</s>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@dataclass(frozen=True)
class TinyModelSpec:
    """Sizes of the tiny model; head_dim 64 is the smallest the vLLM CPU attention kernel takes."""

    vocab_size: int = 2000
    hidden_size: int = 128
    intermediate_size: int = 256
    num_layers: int = 2
    num_heads: int = 2
    max_positions: int = 4096
    seed: int = 0


def _corpus(prompts_file: Path) -> Iterator[str]:
    with prompts_file.open(encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)["prompt"]


def _train_tokenizer(spec: TinyModelSpec, prompts_file: Path, out_dir: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(prompts_file), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=list(SPECIAL_TOKENS[3:]),
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)


def _save_model(spec: TinyModelSpec, vocab_size: int, out_dir: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        max_position_embeddings=spec.max_positions,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir, safe_serialization=True)


def make_tiny_model(
    out_dir: Path, spec: TinyModelSpec = TinyModelSpec(), prompts_file: Path | None = None
) -> Path:
    """Write config, safetensors weights and tokenizer to `out_dir`; the same inputs give the same files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _train_tokenizer(spec, prompts_file or bundled_data_dir() / "prompts.jsonl", out_dir)
    from transformers import AutoTokenizer

    vocab_size = len(AutoTokenizer.from_pretrained(out_dir))
    _save_model(spec, vocab_size, out_dir)
    logger.info("tiny model written to %s (vocab %d)", out_dir, vocab_size)
    return out_dir
