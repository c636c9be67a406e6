"""Probe behind the freezing rows of results/ranking/screens_2026-12-02c: pars train's default recipe with the
encoder's embeddings and its first K layers frozen during fine-tuning (fewer trainable weights on 1,292 prompts,
which overfit by epoch 3). Usage: python experiments/freeze_probe.py K SEED OUT_DIR"""
import sys, time
import pars.jobs as jobs
from pars.jobs import TrainJob, run_training
from pars.predictor.training import TrainSettings

K, seed, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
original = jobs.starting_predictor

def frozen_bottom(job, head_outputs):
    predictor = original(job, head_outputs)
    encoder = predictor.ranker.encoder
    for module in [encoder.embeddings, *encoder.encoder.layer[:K]]:
        for weight in module.parameters():
            weight.requires_grad_(False)
    return predictor

jobs.starting_predictor = frozen_bottom
started = time.perf_counter()
predictor, result, _ = run_training(TrainJob(settings=TrainSettings(seed=seed)), out=out)
print(f"K={K} seed={seed} best {result.best_stage} epoch {result.best_epoch} train {time.perf_counter() - started:.1f} s")
