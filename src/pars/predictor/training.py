"""The training loop shared by every loss: same encoder, data, split and schedule, only the loss differs.

Each step encodes the prompts of a batch once and builds all kept pairs among them (in-batch pairs).
The best epoch is chosen by pairwise accuracy on the validation prompts.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from transformers import get_linear_schedule_with_warmup

from pars.data.labels import LabelledPrompts
from pars.data.pairs import in_batch_pairs
from pars.metrics import pairwise_accuracy
from pars.predictor import losses
from pars.predictor.model import Predictor, outputs_to_scores

log = logging.getLogger(__name__)

LOSSES = ("margin", "listmle", "pointwise", "classify")
DEFAULT_BUCKET_EDGES = (32.0, 64.0, 128.0, 256.0, 512.0, 1024.0)


@dataclass(frozen=True)
class TrainSettings:
    loss: str = "margin"
    margin: float = 1.0
    threshold: float = 0.2
    epochs: int = 3
    batch_size: int = 32
    lr: float = 2e-5
    head_lr: float = 1e-3  # the head starts from random; the encoder's small lr would leave it near zero
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    freeze_encoder: bool = False
    frozen_epochs: int = 60  # head-only training is cheap, so it gets more passes
    linear_probe: bool = True  # full fine-tune only: fit the head on frozen features first (LP-FT)
    bucket_edges: tuple[float, ...] = DEFAULT_BUCKET_EDGES

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.threshold < 0 or self.threshold >= 1:
            raise ValueError("threshold must be in [0, 1)")


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    val_pairwise_accuracy: float
    pairs_kept: int
    pairs_filtered: int


@dataclass
class TrainResult:
    best_epoch: int
    history: list[EpochResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"best_epoch": self.best_epoch, "history": [asdict(h) for h in self.history]}


ProgressHook = Callable[[int, int, float], None]  # (step, total_steps, loss) after each step


def batch_loss(settings: TrainSettings, outputs: torch.Tensor, lengths: np.ndarray) -> tuple[torch.Tensor, int, int]:
    """The configured loss for one batch; also returns (pairs kept, pairs filtered) for the margin loss."""
    scores = outputs_to_scores(outputs)
    lengths_t = torch.as_tensor(lengths, dtype=torch.float32)
    if settings.loss == "margin":
        pairs = in_batch_pairs(lengths, settings.threshold)
        loss = losses.margin_ranking_loss(scores, torch.as_tensor(pairs.first), torch.as_tensor(pairs.second),
                                          torch.as_tensor(pairs.sign), settings.margin)
        return loss, pairs.kept, pairs.filtered
    if settings.loss == "listmle":
        return losses.listmle_loss(scores, lengths_t), 0, 0
    if settings.loss == "pointwise":
        return losses.pointwise_loss(scores, lengths_t), 0, 0
    edges = torch.as_tensor(settings.bucket_edges, dtype=torch.float32)
    return losses.classify_loss(outputs, lengths_t, edges), 0, 0


def initial_head_bias(loss: str, lengths: np.ndarray, bucket_edges: Sequence[float]) -> np.ndarray | None:
    """The head bias a loss should start from: the mean log length (pointwise), log bucket shares (classify).

    The ranking losses do not see the bias. The regression targets sit near log(300) = 5.7, far from a fresh
    head's ~0; with Huber's unit gradient and the head's learning rate the bias alone would use up training
    and the head would learn the offset, not the order. lengths: [prompts, labels] with NaN where unknown.
    """
    known = lengths[~np.isnan(lengths)]
    if loss == "pointwise":
        return np.array([np.log1p(known).mean()])
    if loss == "classify":
        counts = np.bincount(np.searchsorted(np.asarray(bucket_edges), known, side="right"),
                             minlength=len(bucket_edges) + 1)
        return np.log((counts + 1) / (counts.sum() + len(counts)))
    return None


def train(predictor: Predictor, train_data: LabelledPrompts, val_data: LabelledPrompts,
          settings: TrainSettings, on_step: ProgressHook | None = None) -> TrainResult:
    """Train `predictor` in place and leave it at its best epoch (by validation pair accuracy)."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    ranker = predictor.ranker
    tokens = predictor.tokenizer(train_data.prompts, truncation=True, max_length=predictor.max_length)
    n = len(train_data.prompts)
    if n < 2:
        raise ValueError("training needs at least 2 distinct prompts")
    probe = None
    if settings.linear_probe and not settings.freeze_encoder:
        # LP-FT (Kumar et al., ICLR 2022): fit the head on frozen features, then fine-tune everything from
        # there at the encoder's small learning rate. From a random head, fine-tuning distorts the pretrained
        # features: on our 1.3k training prompts it ranked worse than the frozen encoder alone.
        probe = train(predictor, train_data, val_data, replace(settings, freeze_encoder=True))
    elif (bias := initial_head_bias(settings.loss, train_data.lengths, settings.bucket_edges)) is not None:
        with torch.no_grad():
            ranker.head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))

    cached = cached_val = None
    if settings.freeze_encoder:
        ranker.encoder.requires_grad_(False)
        cached = predictor.embed(train_data.prompts)
        cached_val = predictor.embed(val_data.prompts) if val_data.prompts else None
        params = [{"params": ranker.head.parameters(), "lr": settings.head_lr}]
        epochs = settings.frozen_epochs
    else:
        params = [{"params": ranker.encoder.parameters(), "lr": settings.lr},
                  {"params": ranker.head.parameters(), "lr": settings.lr if probe else settings.head_lr}]
        epochs = settings.epochs
    optimizer = torch.optim.AdamW(params, weight_decay=settings.weight_decay)
    steps_per_epoch = (n + settings.batch_size - 1) // settings.batch_size
    total = steps_per_epoch * epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(settings.warmup_fraction * total), total)

    trained_part = ranker.head if settings.freeze_encoder else ranker  # the frozen encoder never changes
    result = TrainResult(best_epoch=0)  # epoch 0: the linear probe, kept if no fine-tuning epoch beats it
    best_state, best_accuracy, step = None, -1.0, 0
    if probe is not None:
        probe_accuracy = probe.history[probe.best_epoch - 1].val_pairwise_accuracy
        best_state, best_accuracy = copy.deepcopy(trained_part.state_dict()), -1.0 if np.isnan(probe_accuracy) else probe_accuracy
        log.info("linear probe: val pair accuracy %.4f after %d head-only epochs", probe_accuracy, settings.frozen_epochs)
    for epoch in range(1, epochs + 1):
        ranker.train()
        order = rng.permutation(n)
        epoch_losses, kept, filtered = [], 0, 0
        for start in range(0, n, settings.batch_size):
            idx = order[start:start + settings.batch_size]
            if len(idx) < 2:
                continue
            if cached is not None:
                outputs = ranker.head(cached[idx])
            else:
                batch = predictor.tokenizer.pad({k: [tokens[k][i] for i in idx] for k in tokens}, return_tensors="pt")
                outputs = ranker(batch["input_ids"], batch["attention_mask"])
            loss, batch_kept, batch_filtered = batch_loss(settings, outputs, train_data.lengths[idx])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ranker.parameters(), settings.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            epoch_losses.append(loss.item())
            kept, filtered = kept + batch_kept, filtered + batch_filtered
            if on_step:
                on_step(step, total, epoch_losses[-1])
        accuracy = float("nan")
        if len(val_data.prompts) >= 2:
            if cached_val is not None:
                with torch.no_grad():
                    val_scores = outputs_to_scores(ranker.head(cached_val)).numpy()
            else:
                val_scores = predictor.score(val_data.prompts, batch_size=64)
            accuracy = pairwise_accuracy(val_scores, val_data.lengths, settings.threshold)
        result.history.append(EpochResult(epoch, float(np.mean(epoch_losses)), accuracy, kept, filtered))
        log.info("epoch %d: loss %.4f, val pair accuracy %.4f", epoch, np.mean(epoch_losses), accuracy)
        if (np.isnan(accuracy) and best_accuracy < 0) or accuracy > best_accuracy:
            best_accuracy = -1.0 if np.isnan(accuracy) else accuracy
            best_state, result.best_epoch = copy.deepcopy(trained_part.state_dict()), epoch
    trained_part.load_state_dict(best_state)
    ranker.encoder.requires_grad_(True)
    ranker.eval()
    return result
