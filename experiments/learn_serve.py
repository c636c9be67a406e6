"""`pars serve --learn` as a user meets it: one open model's lengths, which no checkpoint trained on, replayed
through the real server for 2,000 requests at --load of FCFS capacity (0.95 by default; or a fixed --rate),
beside FCFS and PARS without learning on the same arrivals; --repeats rounds, the three servers interleaved and in
a rotated order each round (so VM drift does not land on one policy), each round unpinned and/or pinned.

One open model from ../shared/data/open (CASTILLO; default Llama-3.1-8B-Instruct): each request a random prompt of
that model with one random sample of its 10 lengths, scaled by --length-scale. The tiny model is made to answer
exactly that long and to stop by itself (min_tokens = L holds EOS back, a logit bias of +100 on EOS brings it right
after: finish "stop", L + 1 tokens), so the server logs exact lengths, as it would from a real model. FCFS capacity
comes from a burst on the FCFS server (median of 3, every round). Each server is `pars serve --policy fcfs`, `pars
serve --predictor STUDENT` or the same with `--learn DIR` (a fresh DIR each round), streamed, the client asking for
no usage. `--pin on`: once a server answers, vLLM's model worker keeps its CPU alone, and the engine core, the API
server, the refit worker and this client share the other (pars.bench.pinning, as `pars bench serve --pin`).
While PARS --learn runs, /metrics is read every 2 s: rolling tau of the live and the initial scorer, refits and
swaps. Output: runs.json, summary.md and session.png (first round: rolling tau; rolling mean latency over FCFS's,
200 requests, in arrival order).

    .venv/bin/python experiments/learn_serve.py --student artifacts/predictor/student --model artifacts/tiny-model \
        --rate 13.8 --repeats 3 --pin both --out results/learning/serve_2026-12-07/interleaved
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import time
from pathlib import Path

import httpx
import matplotlib
import numpy as np

from learn_curve import open_lengths
from pars.bench.http import ServerSettings, ServerSetup, free_port, metric_value, running_process, stream_chat
from pars.bench.pinning import affinity_restored, pin_now
from pars.bench.workload import poisson_arrivals

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TINY_EOS = 2  # pars make-tiny-model's eos_token_id
WINDOW = 200
POLICIES = {"fcfs": "FCFS", "static": "PARS, no learning", "learn": "PARS --learn"}


def body(model: str, prompt: str, tokens: int) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0.0, "stream": True,
            "min_tokens": tokens, "max_tokens": tokens + 8, "logit_bias": {str(TINY_EOS): 100}}


async def replay(url: str, bodies: list[dict], arrivals: np.ndarray, on_tick=None) -> list:
    # a fresh connection per request: an idle kept-alive one that the server closes after its 5 s keep-alive
    # fails the next request on it (httpx.ReadError) when arrivals are seconds apart
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(900.0, connect=30.0), limits=limits) as client:
        started = time.monotonic()

        async def one(i: int):
            await asyncio.sleep(max(0.0, arrivals[i] - (time.monotonic() - started)))
            return await stream_chat(client, bodies[i], started)

        async def ticker() -> None:
            while on_tick is not None:
                await on_tick(client, time.monotonic() - started)
                await asyncio.sleep(2.0)

        ticks = asyncio.create_task(ticker())
        responses = await asyncio.gather(*(one(i) for i in range(len(bodies))))
        ticks.cancel()
        return list(responses)


def e2e(responses: list) -> np.ndarray:
    bad = [i for i, r in enumerate(responses) if r.status != 200]
    if bad:
        raise SystemExit(f"requests {bad[:5]} failed: {responses[bad[0]].error}")
    return np.array([r.finish_s - r.sent_s for r in responses])


def workload(model: str, served_lengths: str, requests: int, length_scale: float) -> list[dict]:
    """`requests` chat bodies: random prompts of the open model `served_lengths`, each answered as long as one
    random sample of its lengths x `length_scale` (seeded)."""
    prompts, lengths = open_lengths()
    served = lengths[served_lengths]
    rng = np.random.default_rng(0)
    ids = sorted(served)
    picks = rng.integers(0, len(ids), requests)
    tokens = [max(1, round(length_scale * rng.choice(served[ids[k]]))) for k in picks]
    return [body(model, prompts[ids[k]], t) for k, t in zip(picks, tokens)]


def capacity_of(url: str, bodies: list[dict]) -> list[float]:
    """Requests per second of three bursts of 100 (the FCFS server's capacity, every round)."""
    capacities = []
    for _ in range(3):
        burst = asyncio.run(replay(url, bodies[:100], np.zeros(100)))
        capacities.append(100 / max(r.finish_s for r in burst))
    return capacities


def run_policy(args: argparse.Namespace, policy: str, bodies: list[dict], rate: float | None, out: Path,
               pin: bool) -> dict:
    """One server for `policy`, warmed up, then the Poisson replay (at `rate`, else --load x the capacity this
    server measured first: FCFS only). Returns its latencies and, for --learn, the timeline and lineage."""
    settings = ServerSettings(args.model, None if policy == "fcfs" else args.student, port=free_port(),
                              max_num_seqs=args.max_num_seqs)
    command = settings.command(ServerSetup(policy, "fcfs" if policy == "fcfs" else "pars", "pars", policy))
    learn = out / "learn"
    if policy == "learn":
        shutil.rmtree(learn, ignore_errors=True)
        command += ["--learn", str(learn), "--learn-every", str(args.learn_every)]
    timeline: list[dict] = []

    async def tick(client: httpx.AsyncClient, at: float) -> None:
        text = (await client.get("/metrics")).text
        timeline.append({"t": at, **{f"tau_{s}": metric_value(text, "pars_learn_rolling_tau", scorer=s)
                                     for s in ("live", "initial")},
                         "logged": metric_value(text, "pars_learn_logged_total"),
                         "refits": metric_value(text, "pars_learn_refits_total", outcome="done"),
                         "swaps": metric_value(text, "pars_learn_swaps_total", outcome="swapped"),
                         "rollbacks": metric_value(text, "pars_learn_rollbacks_total")})

    record: dict = {"policy": policy, "pin": pin}
    with affinity_restored(), running_process(command, settings.environment(), settings.base_url,
                                              out / f"{policy}.log"):
        record["cpus"] = pin_now() if pin else None
        asyncio.run(replay(settings.base_url, bodies[:16], np.zeros(16)))  # warm-up (logged too, with --learn)
        if policy == "fcfs":
            record["capacities"] = capacity_of(settings.base_url, bodies)
        record["rate"] = rate or args.load * statistics.median(record["capacities"])
        arrivals = poisson_arrivals(args.requests, record["rate"], seed=1)
        record["e2e"] = e2e(asyncio.run(replay(settings.base_url, bodies, arrivals,
                                                tick if policy == "learn" else None))).tolist()
        if policy == "learn":
            time.sleep(10)  # a refit started by the last requests finishes
            text = httpx.get(f"{settings.base_url}/metrics").text
            record["final_metrics"] = [line for line in text.splitlines() if line.startswith("pars_learn")]
    if policy == "learn":
        record["timeline"] = timeline
        record["lineage"] = [json.loads(line) for line in (learn / "lineage.jsonl").read_text().splitlines()]
    print(f"{out.name} {policy}: mean e2e {np.mean(record['e2e']):.3f} s at {record['rate']:.1f} req/s", flush=True)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--student", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--served-lengths", default="Llama-3.1-8B-Instruct", help="the open model replayed")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--load", type=float, default=0.95)
    parser.add_argument("--rate", type=float, help="req/s: a fixed rate instead of --load x the measured capacity, "
                                                   "for runs that must share one load axis on a VM whose speed drifts")
    parser.add_argument("--length-scale", type=float, default=0.1)
    parser.add_argument("--learn-every", type=int, default=200)
    parser.add_argument("--max-num-seqs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--pin", choices=("off", "on", "both"), default="off")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.rate is None and args.repeats > 1:
        parser.error("--repeats needs --rate: with --load each round's rate follows the FCFS server, which need not "
                     "run first")
    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    bodies = workload(args.model, args.served_lengths, args.requests, args.length_scale)
    pins = {"off": [False], "on": [True], "both": [False, True]}[args.pin]
    order = list(POLICIES)
    runs = []
    for repeat in range(args.repeats):
        for pin in pins:
            rotated = order[repeat % len(order):] + order[:repeat % len(order)]
            out = args.out / f"round{repeat + 1}-{'pinned' if pin else 'unpinned'}"
            records, rate = {}, args.rate
            for policy in rotated:  # with --load (one round), FCFS runs first and sets the rate
                records[policy] = run_policy(args, policy, bodies, rate, out, pin)
                rate = records[policy]["rate"]
            runs.append({"repeat": repeat + 1, "pin": pin, "order": rotated, **records})
    record = {"settings": {**vars(args), "out": str(args.out), "load_average_before": load_before,
                           "load_average_after": os.getloadavg()}, "runs": runs}
    (args.out / "runs.json").write_text(json.dumps(record, indent=2) + "\n")
    plot(runs[0], args.out / "session.png")
    table = summary(record)
    (args.out / "summary.md").write_text(table + "\n")
    print(table)


def rolling(values: np.ndarray) -> np.ndarray:
    return np.convolve(values, np.ones(WINDOW) / WINDOW, mode="valid")


def plot(run: dict, path: Path) -> None:
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=False)
    timeline = run["learn"]["timeline"]
    times = [row["t"] for row in timeline]
    top.plot(times, [row["tau_live"] for row in timeline], label="live scorer")
    top.plot(times, [row["tau_initial"] for row in timeline], label="scorer it started from")
    swaps = [row["swaps"] for row in timeline]
    for before, after, at in zip(swaps, swaps[1:], times[1:]):
        if after > before:
            top.axvline(at, color="grey", lw=0.5)
    top.set(xlabel="seconds into the replay (grey: a swap seen on /metrics)", ylabel="rolling tau (200 lengths)")
    top.legend()
    fcfs = rolling(np.array(run["fcfs"]["e2e"]))
    for policy in ("static", "learn"):
        ratio = rolling(np.array(run[policy]["e2e"])) / fcfs
        bottom.plot(np.arange(len(ratio)) + WINDOW, ratio, label=POLICIES[policy])
    bottom.legend()
    bottom.axhline(1.0, color="grey", lw=0.5)
    bottom.set(xlabel=f"request (arrival order), round {run['repeat']}, {'pinned' if run['pin'] else 'unpinned'}",
               ylabel=f"mean e2e PARS / FCFS ({WINDOW} requests)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def summary(record: dict) -> str:
    """Per pin mode: medians (range) over rounds of each ratio to FCFS in the same round, whole run and halves."""
    lines = ["| pinned | ratio to FCFS (median of rounds, range) | all | first half | second half | P99 |",
             "|---|---|---|---|---|---|"]
    for pin in dict.fromkeys(run["pin"] for run in record["runs"]):
        runs = [run for run in record["runs"] if run["pin"] == pin]
        for policy in ("static", "learn"):
            cells = []
            for part in ("all", "first", "second", "p99"):
                ratios = []
                for run in runs:
                    fcfs, other = np.array(run["fcfs"]["e2e"]), np.array(run[policy]["e2e"])
                    half = len(fcfs) // 2
                    cut = {"all": slice(None), "first": slice(0, half), "second": slice(half, None)}.get(part)
                    ratios.append(np.percentile(other, 99) / np.percentile(fcfs, 99) if cut is None
                                  else other[cut].mean() / fcfs[cut].mean())
                cells.append(spread(ratios))
            lines.append(f"| {'yes' if pin else 'no'} | {POLICIES[policy]} | {' | '.join(cells)} |")
    lines.append("")
    for run in record["runs"]:
        learn = run["learn"]
        events = [e["event"] for e in learn["lineage"]]
        last = learn["timeline"][-1] if learn["timeline"] else {}
        swap_ms = [e["swap_ms_on_event_loop"] for e in learn["lineage"] if "swap_ms_on_event_loop" in e]
        cpu = [e["cpu_seconds"] for e in learn["lineage"] if "cpu_seconds" in e]
        means = ", ".join(f"{POLICIES[p]} {np.mean(run[p]['e2e']):.3f} s" for p in run["order"])
        lines.append(
            f"- round {run['repeat']}, {'pinned' if run['pin'] else 'unpinned'} (order {', '.join(run['order'])}): "
            f"{means}; FCFS capacity {', '.join(f'{c:.1f}' for c in run['fcfs']['capacities'])} req/s, rate "
            f"{run['fcfs']['rate']:.1f}; events {', '.join(f'{e} {events.count(e)}' for e in dict.fromkeys(events))}; "
            f"last rolling tau live {last.get('tau_live', float('nan')):.3f}, initial "
            f"{last.get('tau_initial', float('nan')):.3f}; swap {max(swap_ms, default=float('nan')):.2f} ms at most; "
            f"refit CPU {sum(cpu):.1f} s in all")
    settings = record["settings"]
    lines.append(f"\nLoad average before {settings['load_average_before']}, after {settings['load_average_after']}.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
