"""Probe of `pars train --init-from`: how much k of one model's own lengths buy the default ranker on that model.

For each model below, k of its lengths on TRAIN-split prompts (a seeded sample) are written as a user's log
({"prompt", "response_tokens"} lines), the default checkpoint is continued on them head-only (`--freeze-encoder
--head-epochs 60`, what `pars train --init-from` does) and both rankers are scored on the model's TEST-split
prompts. Caveat: the default ranker was trained on consensus labels that include this model's train-split
lengths; the issue's leave-one-model-out protocol is not done here. Writes results/ranking/adaptation_probe.json.

    .venv/bin/python experiments/adaptation_probe.py
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from pathlib import Path

from pars.data import PromptSplit, load_records
from pars.jobs import TrainJob, evaluate_predictor, run_training
from pars.paths import PROJECT_ROOT, bundled_data_dir, default_predictor_dir
from pars.predictor import Predictor
from pars.predictor.training import TrainSettings

MODELS = (("alpaca_eval", "gpt4_1106_preview"), ("alpaca_eval", "vicuna-13b-v1.5"),
          ("arena_bench_v1", "vicuna-13b-v1.5"), ("arena_hard_v2.0", "o3-mini-2025-01-31"),
          ("arena_hard_v2.0", "sky-t1-32b"))
KS = (100, 200, 300)


def main() -> None:
    records = load_records(bundled_data_dir())
    parts = PromptSplit(seed=0).partition(records)
    generic = Predictor.load(default_predictor_dir())
    rows, load_before = [], os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        for source, model in MODELS:
            train_rows = [r for r in parts["train"] if (r.source, r.model) == (source, model)]
            test_rows = [r for r in parts["test"] if (r.source, r.model) == (source, model)]
            row = {"source": source, "model": model, "test_rows": len(test_rows),
                   "generic_tau": evaluate_predictor(generic, test_rows).overall["kendall_tau"]}
            for k in KS:
                if k > len(train_rows):
                    continue
                log = Path(scratch) / f"{source}-{model}-{k}.jsonl"
                sample = random.Random(0).sample(train_rows, k)
                log.write_text("".join(json.dumps({"prompt": r.prompt, "response_tokens": r.response_tokens}) + "\n"
                                       for r in sample))
                job = TrainJob(data=str(log), init_from=str(default_predictor_dir()),
                               settings=TrainSettings(freeze_encoder=True, head_epochs=60))
                started = time.perf_counter()
                adapted, _, _ = run_training(job)
                row[f"k{k}_seconds"] = round(time.perf_counter() - started, 1)
                row[f"k{k}_tau"] = evaluate_predictor(adapted, test_rows).overall["kendall_tau"]
            rows.append(row)
            print(json.dumps(row))
    out = PROJECT_ROOT / "results" / "ranking" / "adaptation_probe.json"
    out.write_text(json.dumps({"rows": rows, "load_average_before": load_before, "load_average_after": os.getloadavg(),
                               "recipe": "init-from artifacts/predictor, --freeze-encoder --head-epochs 60"}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
