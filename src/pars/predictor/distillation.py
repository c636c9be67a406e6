"""Distilling the fine-tuned ranker (the teacher) into a `StaticStudent`; the training half of `pars distill`.

Two steps, neither needs a length: (1) every vocabulary word goes through the teacher's fine-tuned encoder
alone, and its output vector becomes that word's static vector (what model2vec does with an encoder's
tokens);
(2) the vectors and a small head are trained to reproduce the teacher's scores on many prompts: squared
error on the standardised score plus a pairwise logistic loss on the teacher's order within each batch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.stats import kendalltau
from torch import nn

from pars.predictor.config import PredictorConfig
from pars.predictor.model import Predictor, length_batches
from pars.predictor.student import STUDENT_KIND, StaticStudent, log_length_feature
from pars.predictor.student_head import StudentHead, as_array
from pars.predictor.words import WordVocabulary

log = logging.getLogger(__name__)

ProgressHook = Callable[[int, int, str], None]  # (done, total, what)
PAIR_GAP = 0.1  # teacher-score gaps (in standard deviations) below this are not ordered by the pairwise loss


@dataclass(frozen=True)
class DistillSettings:
    max_length: int = 256  # words the student averages (the teacher reads 128 word pieces)
    vocabulary_words: int = 30000  # most words with a vector of their own
    min_word_count: int = 2  # a word seen fewer times in the distillation prompts shares a hashed row
    buckets: int = 4096  # hashed rows shared by the other words
    hidden: int = 256  # width of the head's hidden layer
    epochs: int = 6
    batch_size: int = 256
    lr: float = 2e-3  # head
    embedding_lr: float = 5e-3  # static vectors (sparse Adam)
    rank_weight: float = 1.0  # the pairwise term's weight beside the squared error
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.max_length, self.hidden, self.epochs, self.batch_size, self.buckets, self.min_word_count) < 1:
            raise ValueError("max_length, hidden, epochs, batch_size, buckets and min_word_count must be >= 1")
        if not (self.lr > 0 and self.embedding_lr > 0 and self.rank_weight >= 0):
            raise ValueError("learning rates must be > 0 and rank_weight >= 0")


@torch.no_grad()
def static_word_vectors(teacher: Predictor, words: Sequence[str], batch_size: int = 512,
                        on_progress: ProgressHook | None = None) -> np.ndarray:
    """[words, hidden]: each word's vector when the teacher's encoder reads it alone, framed by the tokenizer's
    special tokens ([CLS] word [SEP]): the mean of its word pieces' outputs; fp32."""
    from pars.predictor.model import special_frame

    prefix, suffix = special_frame(teacher.tokenizer)
    encoder = teacher.ranker.eval().encoder
    vectors = np.zeros((len(words), encoder.config.hidden_size), dtype=np.float32)
    pieces = [ids[:16] or [teacher.tokenizer.unk_token_id]
              for ids in teacher.tokenizer(list(words), add_special_tokens=False)["input_ids"]]
    done = 0
    for batch in length_batches([len(p) for p in pieces], batch_size):
        longest = max(len(pieces[i]) for i in batch)
        frame = torch.zeros(len(batch), len(prefix) + longest + len(suffix), dtype=torch.long)
        mask = torch.zeros_like(frame)
        for row, i in enumerate(batch):
            ids = prefix + pieces[i] + suffix
            frame[row, :len(ids)] = torch.tensor(ids)
            mask[row, :len(ids)] = 1
        hidden = encoder(input_ids=frame, attention_mask=mask).last_hidden_state.float()
        for row, i in enumerate(batch):
            vectors[i] = hidden[row, len(prefix):len(prefix) + len(pieces[i])].mean(0).numpy()
        done += len(batch)
        if on_progress:
            on_progress(done, len(words), "static vectors")
    return vectors


def initial_table(teacher: Predictor, vocabulary: WordVocabulary, on_progress: ProgressHook | None = None
                  ) -> np.ndarray:
    """[vocabulary.size, hidden]: the teacher's static vector of each known word; the hashed rows of unknown
    words start at the mean word vector, so an unknown word starts as an average one."""
    words = static_word_vectors(teacher, vocabulary.words, on_progress=on_progress)
    mean = words.mean(0, keepdims=True) if len(words) else np.zeros((1, words.shape[1]), np.float32)
    hashed = vocabulary.size - len(vocabulary.words)
    return np.concatenate([words, np.repeat(mean, hashed, 0)]).astype(np.float32)


class StudentNet(nn.Module):
    """The student as torch modules, for training only; `StaticStudent` scores the exported weights in numpy."""

    def __init__(self, vectors: np.ndarray, hidden: int) -> None:
        super().__init__()
        self.embeddings = nn.EmbeddingBag.from_pretrained(torch.from_numpy(vectors), freeze=False, mode="mean",
                                                          sparse=True)
        self.head = StudentHead(vectors.shape[1] + 1, hidden)

    def forward(self, flat_ids: torch.Tensor, offsets: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.embeddings(flat_ids, offsets), lengths], 1))  # [B]

    def weights(self) -> dict[str, np.ndarray]:
        return {"embeddings": as_array(self.embeddings.weight), **self.head.weights()}


def distillation_loss(scores: torch.Tensor, targets: torch.Tensor, rank_weight: float) -> torch.Tensor:
    """Squared error to the standardised teacher scores, plus `rank_weight` x the mean logistic loss over the
    batch's pairs whose teacher scores differ by at least PAIR_GAP. scores, targets: [B]."""
    squared = ((scores - targets) ** 2).mean()
    gaps = targets[:, None] - targets[None, :]  # [B, B]
    ordered = gaps >= PAIR_GAP  # i should score above j
    if rank_weight == 0 or not ordered.any():
        return squared
    margins = (scores[:, None] - scores[None, :])[ordered]
    return squared + rank_weight * nn.functional.softplus(-margins).mean()


def _bag(ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """EmbeddingBag inputs: flat ids and offsets (a prompt without words is an empty bag: zeros, as in numpy)."""
    offsets = np.cumsum([0] + [len(row) for row in ids[:-1]])
    return torch.tensor([t for row in ids for t in row], dtype=torch.long), torch.as_tensor(offsets)


@dataclass(frozen=True)
class DistillResult:
    epochs: list[dict]  # per epoch: loss, tau of the student against the teacher on the validation prompts
    scale: tuple[float, float]  # (mean, std) of the teacher's scores, undone in the exported head

    def to_dict(self) -> dict:
        return asdict(self)


def train_student(teacher: Predictor, prompts: Sequence[str], teacher_scores: np.ndarray,
                  val_prompts: Sequence[str], val_scores: np.ndarray, settings: DistillSettings,
                  on_progress: ProgressHook | None = None) -> tuple[StaticStudent, DistillResult]:
    """A student trained on (`prompts`, `teacher_scores`); its scores come out on the teacher's own scale.
    Its vocabulary: the frequent words of `prompts`."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    vocabulary = WordVocabulary.build(prompts, settings.vocabulary_words, settings.min_word_count,
                                      settings.buckets, settings.max_length)
    student = StaticStudent(student_config(teacher.config, settings), vocabulary,
                            placeholder_weights(vocabulary.size, 1, settings.hidden))
    ids = student.token_ids(prompts)
    val_ids = student.token_ids(val_prompts)
    lengths = torch.from_numpy(log_length_feature(prompts))
    val_lengths = torch.from_numpy(log_length_feature(val_prompts))
    mean, std = float(np.mean(teacher_scores)), float(np.std(teacher_scores) or 1.0)
    targets = torch.from_numpy(((np.asarray(teacher_scores) - mean) / std).astype(np.float32))
    net = StudentNet(initial_table(teacher, vocabulary, on_progress), settings.hidden)
    dense = torch.optim.AdamW(net.head.parameters(), lr=settings.lr, weight_decay=0.01)
    sparse = torch.optim.SparseAdam(list(net.embeddings.parameters()), lr=settings.embedding_lr)
    steps_per_epoch = math.ceil(len(prompts) / settings.batch_size)
    epochs = []
    for epoch in range(settings.epochs):
        net.train()
        order = rng.permutation(len(prompts))
        losses = []
        for step in range(steps_per_epoch):
            batch = order[step * settings.batch_size:(step + 1) * settings.batch_size]
            flat, offsets = _bag([ids[i] for i in batch])
            loss = distillation_loss(net(flat, offsets, lengths[batch]), targets[batch], settings.rank_weight)
            dense.zero_grad()
            sparse.zero_grad()
            loss.backward()
            dense.step()
            sparse.step()
            losses.append(loss.item())
            if on_progress:
                on_progress(epoch * steps_per_epoch + step + 1, settings.epochs * steps_per_epoch, "student")
        net.eval()
        with torch.no_grad():
            val = net(*_bag(val_ids), val_lengths).numpy()
        tau = float(kendalltau(val, val_scores).statistic) if len(val_prompts) > 1 else math.nan
        epochs.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_tau_vs_teacher": round(tau, 4)})
        log.info("distill epoch %d: loss %.4f, validation tau vs teacher %.3f", epoch + 1, np.mean(losses), tau)
    weights = net.weights()
    weights["out_weight"] *= std  # back on the teacher's scale: score = std * z + mean
    weights["out_bias"] = weights["out_bias"] * std + mean
    return StaticStudent(student.config, vocabulary, weights), DistillResult(epochs, (mean, std))


def student_config(teacher: PredictorConfig, settings: DistillSettings) -> PredictorConfig:
    """The student's config: the teacher's tokenizer and split (so its held-out prompts stay held out)."""
    return PredictorConfig(kind=STUDENT_KIND, encoder=teacher.encoder, pooling="mean", max_length=settings.max_length,
                           length_feature=True, training={"split": teacher.training.get("split", {}),
                                                          "distill": asdict(settings)})


def placeholder_weights(vocabulary: int, dim: int, hidden: int) -> dict[str, np.ndarray]:
    """Zero weights of the right shapes: a student that can tokenise (for `token_ids`) before it is trained."""
    return {"embeddings": np.zeros((vocabulary, dim), np.float32), "hidden_weight": np.zeros((dim + 1, hidden), np.float32),
            "hidden_bias": np.zeros(hidden, np.float32), "out_weight": np.zeros(hidden, np.float32),
            "out_bias": np.zeros(1, np.float32)}
