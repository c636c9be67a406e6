"""The PARS predictor: encoder + pooling + linear head -> one score per prompt (higher = longer answer).

A checkpoint is a directory anyone can open, laid out as `pars.predictor.checkpoint` says: a Hugging Face
encoder model (`config.json`, `model.safetensors`, tokenizer files) plus `head.safetensors` and PARS's
`pars_config.json`. Never pickle.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from pars.predictor.checkpoint import (CHECKPOINT_HINT, HEAD_FILE, HF_CONFIG_FILE, WEIGHTS_FILE, CheckpointError,
                                       check_checkpoint, layout_of, read_json_object, write_settings)
from pars.predictor.config import (LOG_CHARS_MEAN, LOG_CHARS_STD, POOLINGS, PredictorConfig, check_prompts,
                                   check_truncation)
from pars.predictor.encoders import resolve_encoder

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")
BATCH_COST_TOKENS = 64  # the fixed cost of one encoder call, in padded tokens (MiniLM on one CPU core: 60-90)
# The encoder reads at most max_length tokens (128, at most 512): the first 4,096 characters always hold them,
# and tokenising a megabyte prompt in full would cost the scorer for nothing. The length feature reads the
# whole text's length.
MAX_READ_CHARS = 4096
ENCODER_PREFIX = "encoder."  # the encoder's parameters inside `LengthRanker`
def length_feature(prompts: Sequence[str]) -> torch.Tensor:
    """[prompts, 1]: each whole prompt's standardised log characters.

    The encoder sees neither a prompt's length (mean pooling averages it away) nor anything past its first
    max_length tokens, yet long prompts (pasted documents, long specifications) tend to get long answers: on
    the bundled test split the log length alone ranks arena-hard-v2.0 at tau 0.21. Characters, not tokens, so
    a prompt is never tokenised past `MAX_READ_CHARS`.
    """
    chars = torch.tensor([len(prompt) for prompt in prompts], dtype=torch.float32)
    return ((torch.log1p(chars) - LOG_CHARS_MEAN) / LOG_CHARS_STD).unsqueeze(1)


@functools.lru_cache(maxsize=8)
def special_frame(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after one sequence ([CLS] and [SEP] for BERT); once
    per tokenizer, not on every scoring call."""
    framed = tokenizer("a")["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    start = next(i for i in range(len(framed)) if framed[i:i + len(plain)] == plain)
    return framed[:start], framed[start + len(plain):]


def read_ids(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], max_length: int,
             truncation: str = "head") -> list[list[int]]:
    """The token ids the encoder reads of each prompt, special tokens included: its first max_length, or with
    "head-tail" the first and last halves of them, so a question that follows a pasted text is read too.

    Only the first and last `MAX_READ_CHARS` characters are tokenised, whatever the prompt's size.
    """
    check_truncation(truncation)
    heads = [prompt[:MAX_READ_CHARS] for prompt in prompts]
    if truncation == "head":
        return tokenizer(heads, truncation=True, max_length=max_length)["input_ids"]
    prefix, suffix = special_frame(tokenizer)
    budget = max(max_length - len(prefix) - len(suffix), 0)
    head_ids = tokenizer(heads, add_special_tokens=False, verbose=False)["input_ids"]
    cut = [i for i, prompt in enumerate(prompts) if len(prompt) > MAX_READ_CHARS]
    tail_ids = dict(zip(cut, tokenizer([prompts[i][-MAX_READ_CHARS:] for i in cut], add_special_tokens=False,
                                       verbose=False)["input_ids"] if cut else []))
    rows = []
    for i, row in enumerate(head_ids):
        tail = tail_ids.get(i, row)
        if i in tail_ids or len(row) > budget:
            row = row[:budget // 2] + tail[len(tail) - (budget - budget // 2):]
        rows.append(prefix + row + suffix)
    return rows


class LengthRanker(nn.Module):
    """Encoder, pooling and head as one torch module (what training optimises). With `length_feature` the
    head reads the prompt's `length_feature` beside the pooled vector."""

    def __init__(self, encoder: nn.Module, pooling: str, head_outputs: int, length_feature: bool = False) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.encoder = encoder
        self.pooling = pooling
        self.length_feature = length_feature
        self.head = nn.Linear(encoder.config.hidden_size + int(length_feature), head_outputs)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B, T, H]
        hidden = hidden.float()  # a bf16 encoder's output is pooled in fp32 (a no-op for an fp32 one)
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # [B, H]

    def head_outputs(self, vectors: torch.Tensor, prompt_lengths: torch.Tensor) -> torch.Tensor:
        """[B, head_outputs] from pooled vectors and the prompts' `length_feature` (unread without it)."""
        if not self.length_feature:
            return self.head(vectors)
        return self.head(torch.cat([vectors, prompt_lengths.to(vectors.dtype)], 1))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                prompt_lengths: torch.Tensor) -> torch.Tensor:
        return self.head_outputs(self.embed(input_ids, attention_mask), prompt_lengths)  # [B, head_outputs]


class PackedLinear(nn.Module):
    """An inference-only Linear whose weight oneDNN reordered once for its AMX/AVX512 kernels.

    `F.linear` in bf16 reorders the weight on every call: at one prompt's few dozen tokens that is half of
    each matmul, about 2 ms of a 9 ms forward pass. Same results to the bit.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), None)
        self.bias = None if linear.bias is None else linear.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")


def pack_linears(module: nn.Module) -> nn.Module:
    """Swap each Linear of `module` (in place) for a `PackedLinear` where this torch build has the oneDNN
    ops (they are private, used by torch.compile on CPU); where a probe call fails, keep the Linear."""
    for name, child in module.named_children():
        if not isinstance(child, nn.Linear):
            pack_linears(child)
            continue
        try:
            packed = PackedLinear(child)
            packed(torch.zeros(1, child.in_features, dtype=child.weight.dtype))
        except (AttributeError, RuntimeError, NotImplementedError):
            continue
        setattr(module, name, packed)
    return module


def bf16_is_native() -> bool:
    """True where the CPU does bf16 matmuls in hardware (AVX512-BF16 or AMX).

    Only there does bf16 pay: elsewhere oneDNN emulates it through fp32 and scoring gets slower, not faster.
    """
    if not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: stay with fp32
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str) -> str:
    """"fp32" or "bf16"; "auto" is bf16 where the CPU computes it natively (see `bf16_is_native`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if bf16_is_native() else "fp32"
    return precision


def length_batches(lengths: Sequence[int], batch_size: int, batch_cost: int = BATCH_COST_TOKENS) -> list[np.ndarray]:
    """Indices of `lengths` cut into the batches (at most `batch_size` each) that cost least to encode.

    Sorted by length, a batch costs its padded tokens (size x longest member) plus `batch_cost` for the call;
    a dynamic programme over the cut points finds the cheapest cuts, so a call of short prompts and one long
    one does not pad them all to the long one's length, yet prompts are not scored one call each.
    """
    order = np.argsort(lengths, kind="stable")
    longest = np.asarray(lengths, dtype=float)[order]
    best, first = np.zeros(len(order) + 1), np.zeros(len(order) + 1, dtype=int)
    for end in range(1, len(order) + 1):
        starts = np.arange(max(0, end - batch_size), end)
        costs = best[starts] + batch_cost + (end - starts) * longest[end - 1]
        best[end], first[end] = costs.min(), starts[costs.argmin()]  # ties: the bigger batch
    batches, end = [], len(order)
    while end > 0:
        batches.append(order[first[end]:end])
        end = first[end]
    return batches[::-1]


def outputs_to_scores(outputs: torch.Tensor) -> torch.Tensor:
    """[B, K] head outputs -> [B] scores: the output itself, or the expected bucket index for K > 1."""
    if outputs.shape[-1] == 1:
        return outputs[:, 0]
    buckets = torch.arange(outputs.shape[-1], dtype=outputs.dtype, device=outputs.device)
    return (outputs.softmax(-1) * buckets).sum(-1)


class Predictor:
    """Scores prompts with a trained ranker; no training code needed to use it."""

    def __init__(self, config: PredictorConfig, tokenizer, ranker: LengthRanker, precision: str = "fp32") -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.ranker = ranker.eval()
        self.precision = precision
        self._bf16: tuple[tuple, LengthRanker] | None = None  # (weights key, bf16 copy of the ranker)

    @property
    def precision(self) -> str:
        """What `score` runs the encoder in: "fp32" or "bf16" (`embed` defaults to fp32; training stays fp32)."""
        return self._precision

    @precision.setter
    def precision(self, precision: str) -> None:
        self._precision = resolve_precision(precision)

    @property
    def max_length(self) -> int:
        return self.config.max_length

    @property
    def reading(self) -> str:
        """What the encoder reads of a prompt, as cached vectors are keyed: "128", or "128 head-tail"."""
        if self.config.truncation == "head":
            return str(self.config.max_length)
        return f"{self.config.max_length} {self.config.truncation}"

    @classmethod
    def untrained(cls, encoder: str | None = None, pooling: str = "mean", max_length: int = 128,
                  head_outputs: int = 1, seed: int = 0, length_feature: bool = False,
                  truncation: str = "head") -> "Predictor":
        """A real pretrained encoder with a freshly initialised head (the start of training)."""
        encoder_dir = resolve_encoder(encoder)
        torch.manual_seed(seed)
        tokenizer = AutoTokenizer.from_pretrained(encoder_dir, local_files_only=True)
        module = AutoModel.from_pretrained(encoder_dir, local_files_only=True)
        config = PredictorConfig(encoder=encoder or "all-MiniLM-L6-v2", pooling=pooling, max_length=max_length,
                                 truncation=truncation, head_outputs=head_outputs, length_feature=length_feature)
        return cls(config, tokenizer, LengthRanker(module, pooling, head_outputs, length_feature))

    def token_ids(self, prompts: Sequence[str]) -> list[list[int]]:
        """The token ids the encoder reads of each prompt (`read_ids` with this checkpoint's settings)."""
        return read_ids(self.tokenizer, prompts, self.config.max_length, self.config.truncation)

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer.pad({"input_ids": self.token_ids(prompts)}, return_tensors="pt")

    def scoring_ranker(self, precision: str) -> LengthRanker:
        """The ranker itself for fp32; for bf16 a bf16 copy with packed linears (`pack_linears`), made once and
        remade whenever the weights change (training and `load_state_dict` update them in place, which bumps
        each tensor's version). A copy, not autocast: autocast re-casts every weight on every call (+16 ms a
        call at batch 1).
        """
        if precision == "fp32":
            return self.ranker
        key = (id(self.ranker), *(p._version for p in self.ranker.parameters()))
        if self._bf16 is None or self._bf16[0] != key:
            self._bf16 = (key, pack_linears(copy.deepcopy(self.ranker).to(torch.bfloat16).eval()))
        return self._bf16[1]

    @torch.no_grad()
    def embed(self, prompts: list[str], batch_size: int = 64, precision: str = "fp32") -> torch.Tensor:
        """Pooled encoder vectors [prompts, hidden], float32, in input order.

        Prompts are tokenised once, batched by truncated token count (`length_batches`) and each batch padded
        only to its own longest member: sorted by characters, batches were 41-73 % padding (the max_length
        cut makes long prompts equally long) and the encoder's cost grows with padded tokens
        (docs/scoring-cost.md). Padding is masked, so batching changes the vectors only by float rounding.
        `precision="bf16"` runs a bf16 copy of the ranker (`scoring_ranker`); training never asks for it.
        """
        ranker = self.scoring_ranker(resolve_precision(precision))
        self.ranker.eval()
        ids = self.token_ids(prompts)
        vectors = torch.empty(len(prompts), self.ranker.encoder.config.hidden_size)
        for idx in length_batches([len(row) for row in ids], batch_size):
            batch = self.tokenizer.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt")
            vectors[torch.as_tensor(idx)] = ranker.embed(batch["input_ids"], batch["attention_mask"])
        return vectors

    @torch.no_grad()
    def score(self, prompts: list[str], batch_size: int = 32) -> np.ndarray:
        """One float32 score per prompt, in input order (see `embed` for the batching).

        The encoder runs in `self.precision`, except while the ranker is in train mode: the training loop
        scores its validation prompts with this method, and training stays fp32.
        """
        check_prompts(prompts)
        precision = "fp32" if self.ranker.training else self.precision
        return self.head_scores(self.embed(prompts, batch_size, precision), prompts)

    @torch.no_grad()
    def head_scores(self, vectors: torch.Tensor, prompts: Sequence[str]) -> np.ndarray:
        """The scores of `prompts` from their pooled vectors (`embed`, or a cache of them): the head alone."""
        outputs = self.ranker.head_outputs(vectors, length_feature(prompts))
        return outputs_to_scores(outputs).numpy().astype(np.float32)

    def save(self, directory: str | Path) -> Path:
        """Write the checkpoint (`pars.predictor.checkpoint.CURRENT`): the encoder as a Hugging Face model, the
        head beside it, PARS's settings in their own file."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        encoder, head = {}, {}
        for name, tensor in self.ranker.state_dict().items():
            if name.startswith(ENCODER_PREFIX):
                encoder[name[len(ENCODER_PREFIX):]] = tensor.contiguous()
            else:
                head[name] = tensor.contiguous()
        save_file(encoder, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})  # as transformers saves
        save_file(head, str(directory / HEAD_FILE), metadata={"format": "pt"})
        (directory / HF_CONFIG_FILE).write_text(self.ranker.encoder.config.to_json_string())
        write_settings(directory, asdict(self.config))
        self.tokenizer.save_pretrained(directory)
        return directory

    @classmethod
    def load(cls, directory: str | Path, precision: str = "auto") -> "Predictor":
        """Open a checkpoint directory for scoring; missing or corrupt files raise `CheckpointError`.

        `precision` "auto" scores in bf16 where the CPU computes it natively: 2-4x cheaper than fp32 with the
        same ranking (docs/vllm.md); pass "fp32" for bit-stable scores. Loading changes no process-wide state
        (environment, torch threads): files are read locally only (`local_files_only`), and thread counts are
        the choice of the code that owns the process (the `pars` CLI, the serving front end).
        """
        precision = resolve_precision(precision)  # a typo fails before the slow part
        directory = check_checkpoint(directory)
        config = PredictorConfig.read(directory)
        if config.kind != "encoder":
            raise CheckpointError(f"checkpoint at {directory} is a distilled student, not a fine-tuned encoder: "
                                  f"give the teacher's checkpoint (the directory above it)")
        layout = layout_of(directory)
        try:
            encoder_config = AutoConfig.for_model(**read_json_object(directory, layout.encoder_config))
        except (TypeError, ValueError, KeyError) as err:
            raise CheckpointError(f"checkpoint at {directory} has an unreadable config ({err}): {CHECKPOINT_HINT}") from err
        try:
            tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        except (OSError, ValueError) as err:
            raise CheckpointError(f"checkpoint at {directory} has no usable tokenizer files ({err}): {CHECKPOINT_HINT}") from err
        ranker = LengthRanker(AutoModel.from_config(encoder_config), config.pooling, config.head_outputs,
                              config.length_feature)
        try:
            state = load_file(str(directory / WEIGHTS_FILE))
            if layout.head is not None:  # the encoder's weights under their own names, the head in its file
                state = {ENCODER_PREFIX + name: tensor for name, tensor in state.items()}
                state.update(load_file(str(directory / layout.head)))
            ranker.load_state_dict(state)
        except (SafetensorError, OSError, RuntimeError) as err:
            raise CheckpointError(f"checkpoint at {directory} has corrupt weights ({err}): "
                                  f"{CHECKPOINT_HINT}") from err
        return cls(config, tokenizer, ranker, precision)
