"""Probe of the extra set (issue 10, item 2): does training on more sources first, or alongside, help the ranker?

Frozen-encoder recipe (a linear probe on the pretrained MiniLM's cached vectors, `pars train --freeze-encoder`),
so every try costs seconds once the vectors are in the disk cache (artifacts/embeddings/). The extra prompts are
a seeded sample of the extra set's TRAIN-split prompts (never a near-duplicate of a core prompt): every FLASK prompt (15 models) and
the rest drawn from the other sources (Alpaca with Vicuna-7B at four temperatures and davinci-003, GPTeacher,
code, safety), labelled by per-source consensus, so no pair crosses two sources. Tries:
- core: the bundled core set only (the frozen baseline);
- mix N: core plus N extra prompts in one training set (`pars train --extra-prompts` does this with a random sample);
- curriculum: the extra prompts first, then the core set continued from that head (`--init-from`);
- by-source batches (`pars train --batching by-source`): core, and core plus the N extra prompts, with each batch
  drawn from one source's prompts (weighted multi-source batches: a source's share of steps is its share of
  prompts, and every pair in a batch is usable), against the default mixed batches.
Each is scored on the core TEST split (balanced tau and per source) and on FLASK's test prompts, as the mean
(and std) over `--seeds` (the head's initialisation and batch order).

    .venv/bin/python experiments/breadth_probe.py [--extra 6000] [--seeds 0,1,2] [--out results/ranking/breadth_probe.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from pars.bench.serving_report import machine
from pars.data import PromptSplit
from pars.data.loaders import load_records
from pars.evaluation import distinct_prompts
from pars.jobs import TrainJob, evaluate_predictor, load_extra_records, run_training
from pars.paths import PROJECT_ROOT, bundled_data_dir
from pars.predictor.embeddings import disk_cache
from pars.predictor.model import Predictor
from pars.predictor.training import TrainSettings

# mixed batches: the baseline that the by-source tries change (pars train's default is by-source since 2026-12-02)
FROZEN = TrainSettings(freeze_encoder=True, head_epochs=60, batching="mixed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extra", type=int, default=6000, help="extra prompts (all FLASK ones, the rest sampled)")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds (default %(default)s)")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "results" / "ranking" / "breadth_probe.json")
    args = parser.parse_args()
    started, load_before = time.perf_counter(), os.getloadavg()
    split = PromptSplit(seed=0)
    core = load_records(bundled_data_dir())
    core_parts = split.partition(core)
    extra = load_extra_records(distinct_prompts(core))
    extra_parts = split.partition(extra)
    flask_test = [r for r in extra_parts["test"] if r.source == "flask"]
    train_prompts = distinct_prompts(extra_parts["train"])
    flask = {r.prompt for r in extra_parts["train"] if r.source == "flask"}
    others = sorted(p for p in train_prompts if p not in flask)
    chosen = flask | set(random.Random(0).sample(others, max(0, args.extra - len(flask))))
    extra_rows = [r for r in extra_parts["train"] if r.prompt in chosen]
    print(f"extra: {len(chosen)} train prompts ({len(flask)} FLASK), {len(extra_rows)} rows")
    cache = disk_cache(PROJECT_ROOT / "artifacts" / "embeddings", Predictor.untrained())
    seeds = [int(seed) for seed in args.seeds.split(",") if seed.strip()]
    runs: dict[str, list[dict]] = {}

    def record(name: str, predictor: Predictor, seconds: float) -> None:
        core_eval, flask_eval = (evaluate_predictor(predictor, rows, embeddings=cache).to_dict()
                                 for rows in (core_parts["test"], flask_test))
        runs.setdefault(name, []).append({"balanced_tau": core_eval["balanced"]["kendall_tau"],
                                          **{s: v["kendall_tau"] for s, v in core_eval["per_source"].items()},
                                          "overall_tau": core_eval["kendall_tau"],
                                          "flask_test_tau": flask_eval["kendall_tau"], "seconds": seconds})
        print(name, json.dumps(runs[name][-1]))

    by_source = replace(FROZEN, batching="by-source")
    mixes = ((f"mix {len(chosen)}", core + extra_rows, FROZEN),
             (f"mix {min(1500, len(chosen))}", core + [r for r in extra_rows if r.prompt in set(sorted(chosen)[:1500])],
              FROZEN),
             ("core, by-source batches", core, by_source), (f"mix {len(chosen)}, by-source batches", core + extra_rows,
                                                            by_source))
    for seed in seeds:
        for name, records, settings in (("core", core, FROZEN), *mixes):
            t = time.perf_counter()
            predictor, _, _ = run_training(TrainJob(settings=replace(settings, seed=seed)), records=records,
                                           embeddings=cache)
            record(name, predictor, time.perf_counter() - t)
        t = time.perf_counter()
        broad, _, _ = run_training(TrainJob(settings=replace(FROZEN, seed=seed)), records=extra_rows, embeddings=cache)
        with tempfile.TemporaryDirectory() as scratch:
            broad.save(Path(scratch) / "broad")
            continued, _, _ = run_training(TrainJob(settings=replace(FROZEN, seed=seed),
                                                    init_from=str(Path(scratch) / "broad")),
                                           records=core, embeddings=cache)
        record("curriculum (extra, then core)", continued, time.perf_counter() - t)
    cache.save()
    tries = {name: {key: round(float(np.mean([r[key] for r in results])), 4) for key in results[0]}
             | {f"{key}_std": round(float(np.std([r[key] for r in results])), 4) for key in ("balanced_tau",)}
             for name, results in runs.items()}
    report = {"recipe": "frozen MiniLM, linear probe of 60 head epochs, consensus labels per source",
              "seeds": seeds, "runs": runs,
              "extra_prompts": len(chosen), "flask_prompts": len(flask), "tries": tries,
              "core_test_prompts": len(distinct_prompts(core_parts["test"])),
              "flask_test_prompts": len(distinct_prompts(flask_test)), "wall_seconds": round(time.perf_counter() - started, 1),
              "load_average_before": load_before, "load_average_after": os.getloadavg(), "machine": machine()}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
