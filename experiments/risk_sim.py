"""Issue 26, items 2 and 3a: does ordering by a risk-aware score of a predicted length distribution beat ordering
by the margin ranker's score? In the simulator, on open-model lengths, each request served with one of its 10
sampled lengths (so the scheduler faces the real sampling spread).

Distributional head: per open model, on the frozen pooled vectors of the ranker's own fine-tuned encoder (and the
prompt's length feature), a linear log-normal head: log(1 + length) ~ Normal(mu(x), sigma(x)), trained by negative
log-likelihood (a proper scoring rule) on every usable sample of the model's TRAIN-part prompts (split by prompt
text, `PromptSplit`); early stopping on the VAL part's NLL. Scores from it: mean, p50, p90 and CVaR at 0.9 (the
mean of the top 10 %), all in tokens. Compared on the model's TEST-part prompts with the margin ranker's score
(the same checkpoint's head), the mean of the 10 samples (the best point predictor could do: "mean-oracle") and
the served length itself (oracle SJF).

Simulator: the GPU profile (h100-llama-3.1-8b) with max_num_seqs 256, as results/sim/h100-load ran it (at vLLM's
1,024 a queue hardly forms); Poisson arrivals at 0.8, 1.0, 1.2 of the simulated FCFS capacity (its throughput
over the middle 80 % of a burst of 2,000 requests, `saturated_throughput`), --requests test prompts drawn
at random, each with one of its samples drawn
at random (same arrivals, prompts and served lengths for every policy). Every policy's scores are mapped by rank
onto the same sizes (the oracle's log2(1 + length) of the pool, sorted), so the scheduler's default aging and
starvation bound treat every policy alike and only the order differs. Latency: mean, P90, P99 e2e, mean per-token.
Calibration: the share of test samples at or under the predicted p90 (target 0.85-0.95).

    OMP_NUM_THREADS=1 .venv/bin/python experiments/risk_sim.py --predictor artifacts/predictor \
        --out results/open/risk_sim_2026-12-07
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau, norm

from pars.bench.latency import summarise
from pars.bench.sim_study import PROFILE_ENGINES
from pars.bench.sim_workload import prompt_tokens
from pars.data import PromptSplit
from pars.data.open_models import OPEN_DIR, by_model, load_open
from pars.paths import bundled_data_dir
from pars.predictor import Predictor
from pars.predictor.model import length_feature
from pars.scheduling import SchedulerSettings
from pars.sim import SimRequest, StepProfile, oracle_size, simulate

PROFILE = "h100-llama-3.1-8b"
ENGINE = replace(PROFILE_ENGINES[PROFILE], max_num_seqs=256)
LOADS = (0.8, 1.0, 1.2)
CAPACITY_BURST = 2000
Z90 = float(norm.ppf(0.9))
POLICIES = ("fcfs", "margin", "dist_mean", "dist_p50", "dist_p90", "dist_cvar90", "mean_oracle", "oracle")


def fit_lognormal_head(x: np.ndarray, samples: list[tuple[int, ...]], x_val: np.ndarray,
                       val_samples: list[tuple[int, ...]], seed: int = 0, epochs: int = 400) -> torch.nn.Linear:
    """A linear head x -> (mu, log sigma) of log(1 + length), trained by Gaussian NLL on every sample; the epoch
    with the lowest validation NLL is kept."""
    def flat(features, rows):
        index = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
        target = np.log1p(np.concatenate([np.asarray(r, dtype=float) for r in rows]))
        return torch.as_tensor(features[index], dtype=torch.float32), torch.as_tensor(target, dtype=torch.float32)

    train_x, train_y = flat(x, samples)
    val_x, val_y = flat(x_val, val_samples)
    torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], 2)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([float(train_y.mean()), float(np.log(train_y.std()))]))
    optimizer = torch.optim.AdamW(head.parameters(), lr=3e-3, weight_decay=1e-2)

    def nll(features, target):
        mu, log_sigma = head(features).unbind(1)
        return (log_sigma + 0.5 * ((target - mu) / log_sigma.exp()) ** 2).mean()

    best, best_state = float("inf"), None
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = nll(train_x, train_y)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            val = float(nll(val_x, val_y))
        if val < best:
            best, best_state = val, {k: v.clone() for k, v in head.state_dict().items()}
    head.load_state_dict(best_state)
    return head


def distribution_scores(head: torch.nn.Linear, x: np.ndarray) -> dict[str, np.ndarray]:
    """Mean, median, p90 and CVaR at 0.9 of the predicted length (tokens), per prompt."""
    with torch.no_grad():
        mu, log_sigma = head(torch.as_tensor(x, dtype=torch.float32)).unbind(1)
    mu, sigma = mu.numpy().astype(float), np.exp(log_sigma.numpy().astype(float))
    mean = np.exp(mu + sigma**2 / 2)
    return {"dist_mean": mean - 1, "dist_p50": np.exp(mu) - 1, "dist_p90": np.exp(mu + Z90 * sigma) - 1,
            "dist_cvar90": mean * norm.cdf(sigma - Z90) / 0.1 - 1}


def rank_mapped(scores: np.ndarray, sizes_sorted: np.ndarray) -> np.ndarray:
    """Each score replaced by the sorted size of its rank: same sizes for every policy, its own order."""
    mapped = np.empty(len(scores))
    mapped[np.argsort(scores, kind="stable")] = sizes_sorted
    return mapped


def saturated_throughput(finish_s: np.ndarray) -> float:
    """Completions per second between the 10th and the 90th percentile of a burst's finishes: the engine's rate
    while its batch is full. A burst's whole makespan ends in a long drain (the longest answers, batch nearly
    empty) and under-states capacity: at "1.0" of it no queue formed."""
    done = np.sort(finish_s)
    first, last = int(0.1 * len(done)), int(0.9 * len(done))
    return (last - first) / float(done[last] - done[first])


def simulate_policies(test, scores: dict[str, np.ndarray], rng_seed: int, requests: int,
                      profile: StepProfile) -> list[dict]:
    """Every policy on the same draws: `requests` test prompts with one sample each, the first CAPACITY_BURST of
    them as a burst for FCFS's capacity, then Poisson arrivals at each load."""
    aging = SchedulerSettings().aging
    rng = np.random.default_rng(rng_seed)
    requests = max(requests, CAPACITY_BURST)
    picks = rng.integers(0, len(test), requests)
    served = np.array([test[k].samples[rng.integers(0, len(test[k].samples))] for k in picks]).clip(min=1)
    tokens_in = np.array([prompt_tokens(test[k].prompt) for k in picks])
    oracle_sizes = np.array([oracle_size(int(n)) for n in served])
    sizes_sorted = np.sort(oracle_sizes)
    per_request = {name: rank_mapped(s[picks] + 1e-9 * rng.standard_normal(requests), sizes_sorted)
                   for name, s in scores.items()}
    per_request["oracle"], per_request["fcfs"] = oracle_sizes, np.zeros(requests)

    def served_by(policy: str, arrivals: np.ndarray):
        sized = [SimRequest(i, float(arrivals[i]), int(tokens_in[i]), int(served[i]), float(per_request[policy][i]))
                 for i in range(len(arrivals))]
        return simulate(sized, profile, ENGINE, aging)

    def run(policy: str, arrivals: np.ndarray):
        return summarise(served_by(policy, arrivals).timings())

    capacity = saturated_throughput(served_by("fcfs", np.zeros(CAPACITY_BURST)).finish_s)
    rows = []
    for load in LOADS:
        arrivals = np.cumsum(rng.exponential(1.0 / (load * capacity), requests))
        for policy in POLICIES:
            summary = run(policy, arrivals)
            rows.append({"load": load, "policy": policy, "capacity_rps": capacity, "mean_s": summary.e2e.mean,
                         "p90_s": summary.e2e.p90, "p99_s": summary.e2e.p99, "per_token_s": summary.per_token.mean,
                         "throughput_rps": summary.throughput_rps})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictor", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=2, help="arrival/sample draws per model")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started, load_before = time.perf_counter(), os.getloadavg()
    rows = load_open(bundled_data_dir() / OPEN_DIR)
    predictor = Predictor.load(args.predictor, precision="fp32")
    prompts = sorted({r.prompt for r in rows})
    vectors = predictor.embed(prompts, batch_size=32)
    margin = dict(zip(prompts, predictor.head_scores(vectors, prompts)))
    features = dict(zip(prompts, torch.cat([vectors, length_feature(prompts)], 1).numpy()))
    split, profile = PromptSplit(), StepProfile.named(PROFILE)
    models, sims = [], []
    for model, mine in sorted(by_model(rows).items()):
        part = {name: [r for r in mine if split.part_of(r.prompt) == name] for name in ("train", "val", "test")}
        x = {name: np.array([features[r.prompt] for r in part[name]]) for name in part}
        head = fit_lognormal_head(x["train"], [r.samples for r in part["train"]], x["val"],
                                  [r.samples for r in part["val"]])
        test = part["test"]
        scores = {"margin": np.array([margin[r.prompt] for r in test], dtype=float),
                  **distribution_scores(head, x["test"]),
                  "mean_oracle": np.array([np.mean(r.samples) for r in test])}
        means = np.array([np.mean(r.samples) for r in test])
        p90 = scores["dist_p90"]
        covered = np.concatenate([np.asarray(r.samples) <= p90[i] for i, r in enumerate(test)])
        models.append({"model": model, "test_prompts": len(test), "p90_coverage": float(covered.mean()),
                       **{f"tau_{name}": float(kendalltau(s, means).statistic) for name, s in scores.items()}})
        for seed in range(args.seeds):
            sims += [{"model": model, "seed": seed, **row}
                     for row in simulate_policies(test, scores, seed, args.requests, profile)]
        print(f"{model}: p90 coverage {models[-1]['p90_coverage']:.3f}, tau margin {models[-1]['tau_margin']:.3f}, "
              f"dist mean {models[-1]['tau_dist_mean']:.3f}", flush=True)
    record = {"settings": {"predictor": str(args.predictor), "requests": args.requests, "seeds": args.seeds,
                           "profile": PROFILE, "max_num_seqs": ENGINE.max_num_seqs, "loads": LOADS,
                           "load_average_before": load_before,
                           "load_average_after": os.getloadavg(), "seconds": time.perf_counter() - started},
              "models": models, "simulations": sims}
    (args.out / "risk_sim.json").write_text(json.dumps(record, indent=2) + "\n")
    text = report(record)
    (args.out / "summary.md").write_text(text + "\n")
    print(text)


def report(record: dict) -> str:
    models, sims = record["models"], record["simulations"]
    lines = ["| model | test prompts | p90 coverage | " + " | ".join(f"tau {p}" for p in POLICIES[1:-1]) + " |",
             "|---|---|---|" + "---|" * (len(POLICIES) - 2)]
    for m in models:
        lines.append(f"| {m['model']} | {m['test_prompts']} | {m['p90_coverage']:.3f} | "
                     + " | ".join(f"{m[f'tau_{p}']:.3f}" for p in POLICIES[1:-1]) + " |")
    lines.append(f"| **mean** | | **{np.mean([m['p90_coverage'] for m in models]):.3f}** | "
                 + " | ".join(f"**{np.mean([m[f'tau_{p}'] for m in models]):.3f}**" for p in POLICIES[1:-1]) + " |")
    for metric in ("mean_s", "p90_s", "p99_s", "per_token_s"):
        lines += ["", f"{metric} relative to the margin ranker, median over models x seeds (min-max):", "",
                  "| load | " + " | ".join(POLICIES) + " |", "|---|" + "---|" * len(POLICIES)]
        for load in record["settings"]["loads"]:
            cells = []
            for policy in POLICIES:
                ratios = [s[metric] / next(t[metric] for t in sims if t["model"] == s["model"]
                                           and t["seed"] == s["seed"] and t["load"] == load and t["policy"] == "margin")
                          for s in sims if s["load"] == load and s["policy"] == policy]
                cells.append(f"{np.median(ratios):.3f} ({min(ratios):.2f}-{max(ratios):.2f})")
            lines.append(f"| {load} | " + " | ".join(cells) + " |")
    s = record["settings"]
    lines.append(f"\nSimulated ({s['profile']}), {s['requests']} requests per run, {s['seeds']} seeds per model. "
                 f"Load average before {s['load_average_before']}, after {s['load_average_after']}; "
                 f"{s['seconds']:.0f} s.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
