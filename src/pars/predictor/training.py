"""The training loop shared by every loss: same encoder, data, split and recipe, only the loss differs.

The recipe is a list of stages (a linear probe of the head, then fine-tuning). Each step encodes the prompts
of a batch once and builds all kept pairs among them (in-batch pairs). The best epoch of all stages is chosen
by pairwise accuracy on the validation prompts.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from transformers import get_linear_schedule_with_warmup

from pars.data.labels import LabelledPrompts
from pars.data.pairs import in_batch_pairs
from pars.metrics import pairwise_accuracy
from pars.predictor import losses
from pars.predictor.embeddings import EmbeddingCache
from pars.predictor.model import Predictor, length_batches, length_feature, outputs_to_scores

log = logging.getLogger(__name__)

LOSSES = ("margin", "listmle", "pointwise", "classify")
BATCHINGS = ("mixed", "by-source", "balanced")
DEFAULT_BUCKET_EDGES = (32.0, 64.0, 128.0, 256.0, 512.0, 1024.0)
# continuing an already fine-tuned ranker on a user's log (`pars train --init-from`, no validation prompts):
# the rate the leave-one-model-out continuation study measured
CONTINUATION_LR = 2e-5


@dataclass(frozen=True)
class Stage:
    """One step of the recipe: `epochs` passes over the training prompts, training the head alone (on the
    frozen encoder's cached vectors) or the whole ranker."""

    name: str
    epochs: int
    head_only: bool


@dataclass(frozen=True)
class TrainSettings:
    loss: str = "margin"
    margin: float = 1.0
    threshold: float = 0.2
    epochs: int = 3  # fine-tuning passes (the whole ranker); unused with freeze_encoder
    batch_size: int = 32
    # 3 epochs over 1.3k prompts are ~120 steps: at 2e-5 (BERT's usual rate) the encoder barely moved
    # (balanced tau 0.31 vs 0.33-0.36 at 1e-4; docs/ranking.md)
    lr: float = 1e-4
    head_lr: float = 1e-3  # the head starts from random; the encoder's small lr would leave it near zero
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    freeze_encoder: bool = False  # no fine-tuning: the linear probe is all of training
    head_epochs: int = 60  # linear-probe passes; head-only training is cheap, so it gets more (0: no probe)
    bucket_edges: tuple[float, ...] = DEFAULT_BUCKET_EDGES
    batching: str = "by-source"  # see epoch_batches

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.threshold < 0 or self.threshold >= 1:
            raise ValueError("threshold must be in [0, 1)")
        if self.batching not in BATCHINGS:
            raise ValueError(f"unknown batching {self.batching!r}; choose one of {', '.join(BATCHINGS)}")
        if self.epochs < 0 or self.head_epochs < 0:
            raise ValueError("epochs and head_epochs must be >= 0")
        if not self.stages():
            raise ValueError("nothing to train: head_epochs is 0 and " + ("the encoder is frozen" if self.freeze_encoder
                                                                          else "so is epochs"))

    def stages(self) -> tuple[Stage, ...]:
        """The recipe: a linear probe of the head on frozen features, then fine-tuning of the whole ranker
        unless the encoder stays frozen; stages of 0 epochs are left out.

        LP-FT (Kumar et al., ICLR 2022): from a random head, fine-tuning distorts the pretrained features; on
        our 1.3k training prompts it ranked worse than the frozen encoder alone.
        """
        stages = [Stage("linear_probe", self.head_epochs, head_only=True)]
        if not self.freeze_encoder:
            stages.append(Stage("fine_tune", self.epochs, head_only=False))
        return tuple(stage for stage in stages if stage.epochs > 0)


@dataclass
class EpochResult:
    stage: str
    epoch: int  # within its stage, from 1
    train_loss: float
    val_pairwise_accuracy: float
    pairs_kept: int
    pairs_filtered: int


@dataclass
class TrainResult:
    best_stage: str = ""
    best_epoch: int = 0  # within `best_stage`: the weights training left
    history: list[EpochResult] = field(default_factory=list)  # every epoch of every stage, in order

    def to_dict(self) -> dict:
        return {"best_stage": self.best_stage, "best_epoch": self.best_epoch,
                "history": [asdict(h) for h in self.history]}


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


def source_groups(lengths: np.ndarray) -> list[np.ndarray]:
    """Training prompts grouped by which label columns they have: with consensus labels, one group per source."""
    _, group = np.unique(~np.isnan(lengths), axis=0, return_inverse=True)
    return [np.flatnonzero(group.ravel() == g) for g in range(int(group.max()) + 1)]


def group_epoch_sizes(groups: Sequence[np.ndarray], equal: bool) -> list[int]:
    """How many prompts of each group an epoch passes: each one once, or (`equal`) as many as the largest has."""
    return [max(len(group) for group in groups)] * len(groups) if equal else [len(group) for group in groups]


def epoch_batches(groups: Sequence[np.ndarray], batch_size: int, rng: np.random.Generator,
                  equal: bool = False) -> list[np.ndarray]:
    """One epoch's batches: each group shuffled and cut into batches, then the batches shuffled together.

    "mixed" batching passes one group of every prompt. "by-source" passes `source_groups`: each batch holds one
    source's prompts, so all its pairs are usable (pairs never cross sources); in mixed batches a small source
    gets about (its share)^2 of the pairs, e.g. arena-bench's 212 of 1,292 training prompts get 5 % of them.
    "balanced" (`equal`) gives every group as many steps as the largest: a smaller group's prompts come round
    again, in a new order each time, so each source counts alike, as in the balanced tau.
    """
    batches = []
    for group, size in zip(groups, group_epoch_sizes(groups, equal)):
        order = rng.permutation(group)
        while len(order) < size:
            order = np.concatenate([order, rng.permutation(group)])
        order = order[:size]
        batches += [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    if len(groups) == 1:  # one shuffle is enough (and keeps mixed runs as they were)
        return batches
    return [batches[i] for i in rng.permutation(len(batches))]


Forward = Callable[[np.ndarray], torch.Tensor]  # indices of training prompts -> head outputs [batch, K]


@dataclass(frozen=True)
class BestState:
    """The best epoch so far and the weights it left, of the part of the ranker the current stage trains."""

    accuracy: float = -1.0  # -1: none yet, or no validation prompts (then the latest epoch counts as best)
    stage: str = ""
    epoch: int = 0
    state: dict | None = None


def stage_inputs(predictor: Predictor, stage: Stage, train_data: LabelledPrompts, val_data: LabelledPrompts,
                 embeddings: EmbeddingCache) -> tuple[Forward, Callable[[], np.ndarray]]:
    """How a stage gets a batch's head outputs and the validation scores: a head-only stage from the frozen
    encoder's vectors in `embeddings`, fine-tuning through the encoder every time."""
    ranker = predictor.ranker
    prompt_lengths = length_feature(train_data.prompts)
    if stage.head_only:
        train_vectors = embeddings.vectors(predictor, train_data.prompts)
        val_vectors = embeddings.vectors(predictor, val_data.prompts)
        return (lambda idx: ranker.head_outputs(train_vectors[idx], prompt_lengths[idx]),
                lambda: predictor.head_scores(val_vectors, val_data.prompts))
    ids = predictor.token_ids(train_data.prompts)

    def forward(idx: np.ndarray) -> torch.Tensor:
        """The batch's outputs in `idx` order, encoded in length-sorted parts (`length_batches`): padded to its
        longest member, a batch of 32 was half padding (52 % of the tokens over an epoch of bundled prompts).
        Padding is masked, so the parts change the outputs only by float rounding; the loss sees one batch."""
        parts = length_batches([len(ids[i]) for i in idx], len(idx))  # positions in idx, part by part
        outputs = []
        for part in parts:
            rows = idx[part]
            batch = predictor.tokenizer.pad({"input_ids": [ids[i] for i in rows]}, return_tensors="pt")
            outputs.append(ranker(batch["input_ids"], batch["attention_mask"], prompt_lengths[rows]))
        return torch.cat(outputs)[torch.as_tensor(np.argsort(np.concatenate(parts)))]

    return forward, lambda: predictor.score(val_data.prompts, batch_size=64)


def train(predictor: Predictor, train_data: LabelledPrompts, val_data: LabelledPrompts, settings: TrainSettings,
          on_step: ProgressHook | None = None, embeddings: EmbeddingCache | None = None,
          fresh_head: bool = True) -> TrainResult:
    """Train `predictor` in place through `settings.stages()` and leave it at the best epoch of all stages (by
    validation pair accuracy); each stage starts from the best weights so far. `fresh_head` False: the head was
    trained before (continuing from a checkpoint), so its bias is not reset to the loss's starting point.

    Head-only stages read the frozen encoder's vectors from `embeddings`: give every run on the same
    pretrained encoder one cache (the ranking benchmark does) and each prompt is encoded once.
    """
    n = len(train_data.prompts)
    if n < 2:
        raise ValueError("training needs at least 2 distinct prompts")
    embeddings = EmbeddingCache() if embeddings is None else embeddings
    ranker = predictor.ranker
    if fresh_head and (bias := initial_head_bias(settings.loss, train_data.lengths, settings.bucket_edges)) is not None:
        with torch.no_grad():
            ranker.head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    stages = settings.stages()
    groups = source_groups(train_data.lengths) if settings.batching != "mixed" else [np.arange(n)]
    equal = settings.batching == "balanced"
    steps_per_epoch = sum(-(-size // settings.batch_size) for size in group_epoch_sizes(groups, equal))
    total_steps, step = steps_per_epoch * sum(stage.epochs for stage in stages), 0
    result, best = TrainResult(), BestState()
    for number, stage in enumerate(stages):
        torch.manual_seed(settings.seed)  # each stage starts from the seed, as a run of its own would
        rng = np.random.default_rng(settings.seed)
        forward, val_scores = stage_inputs(predictor, stage, train_data, val_data, embeddings)
        part = ranker.head if stage.head_only else ranker  # what the stage trains: the state `best` keeps
        if best.state is not None:  # the previous stage left the best weights in place: keep them in this part's terms
            best = BestState(best.accuracy, best.stage, best.epoch, copy.deepcopy(part.state_dict()))
        # a fresh head needs a larger step than the encoder; one fit by a linear probe moves at the encoder's pace
        head_lr = settings.head_lr if stage.head_only or number == 0 else settings.lr
        params = [] if stage.head_only else [{"params": ranker.encoder.parameters(), "lr": settings.lr}]
        optimizer = torch.optim.AdamW(params + [{"params": ranker.head.parameters(), "lr": head_lr}],
                                      weight_decay=settings.weight_decay)
        stage_steps = steps_per_epoch * stage.epochs
        scheduler = get_linear_schedule_with_warmup(optimizer, int(settings.warmup_fraction * stage_steps), stage_steps)
        for epoch in range(1, stage.epochs + 1):
            part.train()
            epoch_losses, kept, filtered = [], 0, 0
            for idx in epoch_batches(groups, settings.batch_size, rng, equal):
                if len(idx) < 2:
                    continue
                loss, batch_kept, batch_filtered = batch_loss(settings, forward(idx), train_data.lengths[idx])
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(part.parameters(), settings.grad_clip)
                optimizer.step()
                scheduler.step()
                step += 1
                epoch_losses.append(loss.item())
                kept, filtered = kept + batch_kept, filtered + batch_filtered
                if on_step:
                    on_step(step, total_steps, epoch_losses[-1])
            accuracy = float("nan")
            if len(val_data.prompts) >= 2:
                accuracy = pairwise_accuracy(val_scores(), val_data.lengths, settings.threshold)
            mean_loss = float(np.mean(epoch_losses))
            result.history.append(EpochResult(stage.name, epoch, mean_loss, accuracy, kept, filtered))
            log.info("%s epoch %d: loss %.4f, val pair accuracy %.4f", stage.name, epoch, mean_loss, accuracy)
            if (np.isnan(accuracy) and best.accuracy < 0) or accuracy > best.accuracy:
                best = BestState(-1.0 if np.isnan(accuracy) else accuracy, stage.name, epoch,
                                 copy.deepcopy(part.state_dict()))
        part.load_state_dict(best.state)
    result.best_stage, result.best_epoch = best.stage, best.epoch
    ranker.eval()
    return result
