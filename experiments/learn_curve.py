"""Offline adaptation curve of `pars serve --learn`: how much the student gains on an open model it never saw, per
number of logged lengths (100 to 3,000), with the server's own refit and guard (pars.learning).

For each open model in data/open (CASTILLO, read by pars.data.open_models: 13 models, 10 sampled lengths per prompt;
no checkpoint trained on these lengths, the student saw the prompts' text only through the teacher's scores): its
prompts are split 70/30 by prompt. A log of N requests (100, 300, 500, 1,000, 3,000) is drawn from the 70 %: each
request a random prompt and one random sample of its 10 lengths (what a server logs, sampling noise included; capped
samples left out). The refit job's recipe runs on it (most recent quarter held back, the live student's head
refitted on the rest, the guard on the held-back quarter); Kendall tau is measured on the 30 % against the mean of
the 10 samples, for the student as shipped, the refit, and what the guard serves (the refit if it passed, else the
student). `--seeds` logs per (model, N); medians over seeds.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/learn_curve.py --student artifacts/predictor/student \
        --out results/learning/curve_2026-12-07
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from pars.data.open_models import load_open
from pars.learning.guard import compare, tau
from pars.learning.refit import RefitError, RefitSettings, refit_head
from pars.paths import bundled_data_dir
from pars.predictor.student import StaticStudent

SIZES = (100, 300, 500, 1000, 3000)
HOLDOUT = 0.25  # as pars.learning.refit_job


def open_lengths() -> tuple[dict[str, str], dict[str, dict[str, list[int]]]]:
    """Prompt text by id, and per model: prompt id -> its usable sampled lengths."""
    rows = load_open(bundled_data_dir() / "open")
    lengths: dict[str, dict[str, list[int]]] = defaultdict(dict)
    for row in rows:
        lengths[row.model][row.prompt_id] = list(row.samples)
    return {row.prompt_id: row.prompt for row in rows}, lengths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--student", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started, load_before = time.perf_counter(), os.getloadavg()
    student = StaticStudent.load(args.student)
    prompts, lengths = open_lengths()
    ids = sorted(prompts)
    features = dict(zip(ids, student.features([prompts[i] for i in ids])))
    rows = []
    for model in sorted(lengths):
        rng = np.random.default_rng(0)
        mine = sorted(lengths[model])
        rng.shuffle(mine)
        cut = int(len(mine) * 0.7)
        train, test = mine[:cut], mine[cut:]
        test_x = np.stack([features[i] for i in test])
        test_y = np.array([np.mean(lengths[model][i]) for i in test])
        base = tau(student.score_features(test_x), test_y)
        for size in SIZES:
            for seed in range(args.seeds):
                draw = np.random.default_rng(1000 * seed + size)
                picks = draw.integers(0, len(train), size)
                x = np.stack([features[train[k]] for k in picks])
                y = np.array([draw.choice(lengths[model][train[k]]) for k in picks])
                held = int(size * (1 - HOLDOUT))
                refit_started = time.perf_counter()
                try:
                    refitted = refit_head(student, x[:held], y[:held], np.zeros(held, dtype=bool),
                                          RefitSettings(seed=seed))
                except RefitError:
                    refitted = student
                seconds = time.perf_counter() - refit_started
                verdict = compare(student.score_features(x[held:]), refitted.score_features(x[held:]), y[held:])
                after = tau(refitted.score_features(test_x), test_y)
                rows.append({"model": model, "logged": size, "seed": seed, "train_prompts": len(train),
                             "test_prompts": len(test), "tau_student": base, "tau_refit": after,
                             "guard_passed": verdict.better, "tau_served": after if verdict.better else base,
                             "refit_seconds": seconds})
            picked = [r for r in rows if r["model"] == model and r["logged"] == size]
            print(f"{model} N={size}: student {base:.3f}, refit {statistics.median(r['tau_refit'] for r in picked):.3f}"
                  f", served {statistics.median(r['tau_served'] for r in picked):.3f}, guard passed "
                  f"{sum(r['guard_passed'] for r in picked)}/{len(picked)}", flush=True)
    record = {"settings": {"student": str(args.student), "seeds": args.seeds, "sizes": SIZES,
                           "refit": RefitSettings().__dict__, "wall_s": time.perf_counter() - started,
                           "load_average_before": load_before, "load_average_after": os.getloadavg()},
              "rows": rows}
    (args.out / "runs.json").write_text(json.dumps(record, indent=2) + "\n")
    table = summary(rows)
    (args.out / "summary.md").write_text(table + "\n")
    print(table)


def summary(rows: list[dict]) -> str:
    def median(model: str, size: int, key: str) -> float:
        return statistics.median(r[key] for r in rows if r["model"] == model and r["logged"] == size)

    models = sorted({r["model"] for r in rows})
    head = " | ".join(f"N={n}: refit / served" for n in SIZES)
    lines = [f"| model | student | {head} |", "|---|---|" + "---|" * len(SIZES)]
    for model in models:
        base = median(model, SIZES[0], "tau_student")
        cells = " | ".join(f"{median(model, n, 'tau_refit') - base:+.3f} / {median(model, n, 'tau_served') - base:+.3f}"
                           for n in SIZES)
        lines.append(f"| {model} | {base:.3f} | {cells} |")
    means = " | ".join(
        f"{statistics.mean(median(m, n, 'tau_refit') - median(m, n, 'tau_student') for m in models):+.3f} / "
        f"{statistics.mean(median(m, n, 'tau_served') - median(m, n, 'tau_student') for m in models):+.3f}"
        for n in SIZES)
    lines.append(f"| mean gain | | {means} |")
    seconds = {n: statistics.median(r["refit_seconds"] for r in rows if r["logged"] == n) for n in SIZES}
    lines.append("")
    lines.append("Refit seconds (median, one process, this machine): "
                 + ", ".join(f"N={n}: {s:.2f}" for n, s in seconds.items()))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
