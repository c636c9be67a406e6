"""Screen of student recipes for `pars distill` (issue 24): test-split tau and batch-1 cost per variant.

Usage: python experiments/distill_screen.py SCORES.npz PROMPTS.json OUT.jsonl VARIANT [VARIANT ...]
SCORES/PROMPTS: the teacher's scores of the distillation prompts (written once by the same job code), so each
variant trains on identical targets. Variants: name=key:value,key:value over DistillSettings fields, plus
`prompts:N` (a seeded sample).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace

import numpy as np

from pars.jobs import evaluate_predictor, test_records
from pars.paths import default_predictor_dir
from pars.predictor import Predictor
from pars.predictor.distillation import DistillSettings, train_student


def batch1_us(student, prompts: list[str], rounds: int = 3) -> float:
    best = []
    for _ in range(rounds):
        started = time.perf_counter()
        for prompt in prompts:
            student.score([prompt])
        best.append((time.perf_counter() - started) / len(prompts) * 1e6)
    return float(np.median(best))


def main() -> None:
    scores_path, prompts_path, out_path, *variants = sys.argv[1:]
    teacher = Predictor.load(default_predictor_dir())
    cached = np.load(scores_path)
    texts = json.load(open(prompts_path))
    test = test_records(teacher)
    probe = sorted({r.prompt for r in test})[:256]
    for variant in variants:
        name, _, spec = variant.partition("=")
        options = dict(item.split(":") for item in spec.split(",") if item)
        n = int(options.pop("prompts", len(texts["train"])))
        settings = replace(DistillSettings(), **{k: type(getattr(DistillSettings(), k))(v) for k, v in options.items()})
        keep = np.sort(np.random.default_rng(0).choice(len(texts["train"]), n, replace=False))
        prompts = [texts["train"][i] for i in keep]
        started = time.perf_counter()
        student, result = train_student(teacher, prompts, cached["train"][keep], texts["val"], cached["val"],
                                        settings)
        seconds = time.perf_counter() - started
        evaluation = evaluate_predictor(student, test)
        row = {"variant": name, "prompts": n, "settings": settings.__dict__, "train_s": round(seconds, 1),
               "balanced": evaluation.balanced["kendall_tau"],
               "per_source": {k: v["kendall_tau"] for k, v in evaluation.per_source.items()},
               "val_tau_vs_teacher": result.epochs[-1]["val_tau_vs_teacher"], "batch1_us": batch1_us(student, probe)}
        print(json.dumps(row), flush=True)
        with open(out_path, "a") as handle:
            handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
