"""Does the lowest OS priority keep a CPU-bound helper off serving's latency on this VM? (issue 25's question)

One FCFS `pars serve` (the tiny model), the learn_serve workload (one open model's lengths) replayed at --rate,
rounds alternating: alone, then beside a hog at the refit worker's priority (pars.learning.worker.lowest_priority:
SCHED_IDLE + nice 19) doing one thread of float32 matmuls, as a refit does. If SCHED_IDLE protected serving the two
would match; the ratio is what any background CPU work costs a request here.

    .venv/bin/python experiments/idle_hog_probe.py --model artifacts/tiny-model --rate 13.8 \
        --out results/learning/idle_hog_2026-12-07
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from learn_serve import replay, workload
from pars.bench.http import ServerSettings, ServerSetup, free_port, running_process
from pars.bench.workload import poisson_arrivals

HOG = ("from pars.learning.worker import lowest_priority; lowest_priority(); import numpy as np\n"
       "a = np.random.rand(2048, 385).astype('float32'); b = np.random.rand(385, 256).astype('float32')\n"
       "while True: a @ b")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--rate", type=float, default=13.8)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    bodies = workload(args.model, "Llama-3.1-8B-Instruct", args.requests, length_scale=0.1)  # as learn_serve's
    arrivals = poisson_arrivals(args.requests, args.rate, seed=1)
    settings = ServerSettings(args.model, None, port=free_port())
    rounds = []
    with running_process(settings.command(ServerSetup("fcfs", "fcfs", "pars", "fcfs")), settings.environment(),
                         settings.base_url, args.out / "fcfs.log"):
        asyncio.run(replay(settings.base_url, bodies[:16], np.zeros(16)))
        for number in range(args.rounds):
            row = {}
            for case in ("alone", "beside_idle_hog"):
                hog = (subprocess.Popen([sys.executable, "-c", HOG], env={**os.environ, "OMP_NUM_THREADS": "1"})
                       if case != "alone" else None)
                try:
                    responses = asyncio.run(replay(settings.base_url, bodies, arrivals))
                finally:
                    if hog is not None:
                        hog.kill()
                        hog.wait()
                row[case] = float(np.mean([r.finish_s - r.sent_s for r in responses]))
            row["ratio"] = row["beside_idle_hog"] / row["alone"]
            print(f"round {number + 1}: {row}", flush=True)
            rounds.append(row)
    ratios = sorted(r["ratio"] for r in rounds)
    record = {"settings": {**vars(args), "out": str(args.out), "load_average_before": load_before,
                           "load_average_after": os.getloadavg()}, "rounds": rounds,
              "median_ratio": ratios[len(ratios) // 2]}
    (args.out / "probe.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"mean e2e beside a SCHED_IDLE hog / alone: median {record['median_ratio']:.3f} "
          f"(range {ratios[0]:.3f}-{ratios[-1]:.3f})")


if __name__ == "__main__":
    main()
