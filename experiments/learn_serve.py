"""`pars serve --learn` as a user meets it: one open model's lengths, which no checkpoint trained on, replayed
through the real server for 2,000 requests at --load of FCFS capacity (0.95 by default; 0.7 was run), beside FCFS
on the same arrivals.

One open model from ../shared/data/open (CASTILLO; default Llama-3.1-8B-Instruct): each request a random prompt of
that model with one random sample of its 10 lengths, scaled by --length-scale. The tiny model is made to answer
exactly that long and to stop by itself (min_tokens = L holds EOS back, a logit bias of +100 on EOS brings it right
after: finish "stop", L + 1 tokens), so the server logs exact lengths, as it would from a real model. FCFS capacity
comes from a burst on the FCFS server (median of 3); Poisson arrivals at --load of it go to `pars serve --policy
fcfs`, to `pars serve --predictor STUDENT` and to `pars serve --predictor STUDENT --learn DIR` in turn, streamed,
the client asking for no usage. While PARS --learn runs, /metrics is read every 2 s: rolling tau of the live and the
initial scorer, refits and swaps. Output: runs.json, summary.md and session.png (rolling tau; rolling mean latency
over FCFS's, 200 requests, in arrival order).

    .venv/bin/python experiments/learn_serve.py --student artifacts/predictor/student --model artifacts/tiny-model \
        --load 0.7 --out results/learning/serve_2026-12-07/sched_idle
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
from pars.bench.workload import poisson_arrivals

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TINY_EOS = 2  # pars make-tiny-model's eos_token_id
WINDOW = 200


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
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    prompts, lengths = open_lengths()
    served = lengths[args.served_lengths]
    rng = np.random.default_rng(0)
    ids = sorted(served)
    picks = rng.integers(0, len(ids), args.requests)
    tokens = [max(1, round(args.length_scale * rng.choice(served[ids[k]]))) for k in picks]
    bodies = [body(args.model, prompts[ids[k]], t) for k, t in zip(picks, tokens)]

    fcfs = ServerSettings(args.model, None, port=free_port(), max_num_seqs=args.max_num_seqs)
    with running_process(fcfs.command(ServerSetup("fcfs", "fcfs", "pars", "fcfs")), fcfs.environment(),
                         fcfs.base_url, args.out / "fcfs.log"):
        asyncio.run(replay(fcfs.base_url, bodies[:16], np.zeros(16)))  # warm-up
        capacities = []
        for _ in range(3):
            burst = asyncio.run(replay(fcfs.base_url, bodies[:100], np.zeros(100)))
            capacities.append(100 / max(r.finish_s for r in burst))
        capacity = statistics.median(capacities)
        rate = args.rate or args.load * capacity
        arrivals = poisson_arrivals(args.requests, rate, seed=1)
        print(f"FCFS capacity {capacities} req/s -> {rate:.1f} req/s", flush=True)
        fcfs_e2e = e2e(asyncio.run(replay(fcfs.base_url, bodies, arrivals)))
    print(f"FCFS mean e2e {fcfs_e2e.mean():.2f} s", flush=True)

    still = ServerSettings(args.model, args.student, port=free_port(), max_num_seqs=args.max_num_seqs)
    with running_process(still.command(ServerSetup("pars", "pars", "pars", "pars")), still.environment(),
                         still.base_url, args.out / "pars-static.log"):
        asyncio.run(replay(still.base_url, bodies[:16], np.zeros(16)))  # warm-up
        static_e2e = e2e(asyncio.run(replay(still.base_url, bodies, arrivals)))
    print(f"PARS (no learning) mean e2e {static_e2e.mean():.2f} s", flush=True)

    learn = args.out / "learn"
    shutil.rmtree(learn, ignore_errors=True)
    pars = ServerSettings(args.model, args.student, port=free_port(), max_num_seqs=args.max_num_seqs)
    command = [*pars.command(ServerSetup("pars", "pars", "pars", "pars --learn")), "--learn", str(learn),
               "--learn-every", str(args.learn_every)]
    timeline: list[dict] = []

    async def tick(client: httpx.AsyncClient, at: float) -> None:
        text = (await client.get("/metrics")).text
        timeline.append({"t": at, **{f"tau_{s}": metric_value(text, "pars_learn_rolling_tau", scorer=s)
                                     for s in ("live", "initial")},
                         "logged": metric_value(text, "pars_learn_logged_total"),
                         "refits": metric_value(text, "pars_learn_refits_total", outcome="done"),
                         "swaps": metric_value(text, "pars_learn_swaps_total", outcome="swapped"),
                         "rollbacks": metric_value(text, "pars_learn_rollbacks_total")})

    with running_process(command, pars.environment(), pars.base_url, args.out / "pars.log"):
        asyncio.run(replay(pars.base_url, bodies[:16], np.zeros(16)))  # warm-up (logged too)
        pars_e2e = e2e(asyncio.run(replay(pars.base_url, bodies, arrivals, tick)))
        time.sleep(10)  # a refit started by the last requests finishes
        text = httpx.get(f"{pars.base_url}/metrics").text
    lineage = [json.loads(line) for line in (learn / "lineage.jsonl").read_text().splitlines()]
    record = {"settings": {**vars(args), "out": str(args.out), "capacities": capacities, "rate": rate,
                           "load_average_before": load_before, "load_average_after": os.getloadavg()},
              "fcfs_e2e": fcfs_e2e.tolist(), "static_e2e": static_e2e.tolist(), "pars_e2e": pars_e2e.tolist(),
              "timeline": timeline,
              "lineage": lineage,
              "final_metrics": [line for line in text.splitlines() if line.startswith("pars_learn")]}
    (args.out / "runs.json").write_text(json.dumps(record, indent=2) + "\n")
    plot(record, args.out / "session.png")
    table = summary(record)
    (args.out / "summary.md").write_text(table + "\n")
    print(table)


def rolling(values: np.ndarray) -> np.ndarray:
    return np.convolve(values, np.ones(WINDOW) / WINDOW, mode="valid")


def plot(record: dict, path: Path) -> None:
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=False)
    times = [row["t"] for row in record["timeline"]]
    top.plot(times, [row["tau_live"] for row in record["timeline"]], label="live scorer")
    top.plot(times, [row["tau_initial"] for row in record["timeline"]], label="scorer it started from")
    swaps = [row["swaps"] for row in record["timeline"]]
    for before, after, at in zip(swaps, swaps[1:], times[1:]):
        if after > before:
            top.axvline(at, color="grey", lw=0.5)
    top.set(xlabel="seconds into the replay (grey: a swap seen on /metrics)", ylabel="rolling tau (200 lengths)")
    top.legend()
    fcfs = rolling(np.array(record["fcfs_e2e"]))
    for key, label in (("static_e2e", "PARS, no learning"), ("pars_e2e", "PARS --learn")):
        ratio = rolling(np.array(record[key])) / fcfs
        bottom.plot(np.arange(len(ratio)) + WINDOW, ratio, label=label)
    bottom.legend()
    bottom.axhline(1.0, color="grey", lw=0.5)
    bottom.set(xlabel="request (arrival order)", ylabel=f"mean e2e PARS / FCFS ({WINDOW} requests)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def summary(record: dict) -> str:
    fcfs, pars = np.array(record["fcfs_e2e"]), np.array(record["pars_e2e"])
    static = np.array(record["static_e2e"])
    half = len(pars) // 2
    parts = {"all": slice(None), "first half": slice(0, half), "second half": slice(half, None)}
    events = [e["event"] for e in record["lineage"]]
    last = record["timeline"][-1] if record["timeline"] else {}
    swap_ms = ", ".join(f"{e.get('swap_ms_on_event_loop', float('nan')):.3f} ms"
                        for e in record["lineage"] if e["event"] == "swap")
    return "\n".join([
        "| | FCFS | PARS, no learning | PARS --learn | no learning / FCFS | --learn / FCFS |",
        "|---|---|---|---|---|---|",
        *(f"| mean e2e s, {name} | {fcfs[part].mean():.3f} | {static[part].mean():.3f} | {pars[part].mean():.3f} | "
          f"{static[part].mean() / fcfs[part].mean():.3f} | {pars[part].mean() / fcfs[part].mean():.3f} |"
          for name, part in parts.items()),
        f"| P99 e2e s | {np.percentile(fcfs, 99):.3f} | {np.percentile(static, 99):.3f} | "
        f"{np.percentile(pars, 99):.3f} | {np.percentile(static, 99) / np.percentile(fcfs, 99):.3f} | "
        f"{np.percentile(pars, 99) / np.percentile(fcfs, 99):.3f} |",
        "", f"Events: {', '.join(f'{e} {events.count(e)}' for e in dict.fromkeys(events))}; last rolling tau: live "
        f"{last.get('tau_live', float('nan')):.3f}, initial {last.get('tau_initial', float('nan')):.3f}; swap time on "
        f"the event loop: {swap_ms or '-'}; "
        f"capacity {record['settings']['capacities']} req/s, rate {record['settings']['rate']:.1f} req/s."])


if __name__ == "__main__":
    main()
