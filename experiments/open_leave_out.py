"""Issue 26, item 1: leave-that-model-out for open models. Train `pars train`'s default ranker (bundled + open/
lengths) with the open lengths of the --leave-out models removed (their prompts stay, labelled by the other
open models), save it, then judge it with experiments/open_tau.py --part test beside the default ranker: how much of
the gain on a model comes from that model's own lengths, and how much from the other open models'.

    OMP_NUM_THREADS=2 .venv/bin/python experiments/open_leave_out.py --leave-out gemma-3-4b-it,gemma-3-12b-it \
        --out artifacts/leave-out-gemma
    OMP_NUM_THREADS=1 .venv/bin/python experiments/open_tau.py --part test --ranker default=artifacts/predictor \
        --ranker without_gemma=artifacts/leave-out-gemma --out results/open/leave_out_gemma_2026-12-07
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pars.data.open_models import OPEN_SOURCE
from pars.jobs import TrainJob, load_job_records, run_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leave-out", required=True, help="comma-separated open model names")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    left_out = set(args.leave_out.split(","))
    job = TrainJob()
    records = load_job_records(job)
    unknown = left_out - {r.model for r in records if r.source == OPEN_SOURCE}
    if unknown:
        raise SystemExit(f"no open model {', '.join(sorted(unknown))} in data/open/")
    kept = [r for r in records if not (r.source == OPEN_SOURCE and r.model in left_out)]
    print(f"{len(records) - len(kept)} open rows of {', '.join(sorted(left_out))} left out", flush=True)
    _, result, _ = run_training(job, args.out, records=kept)
    print(f"best epoch {result.best_epoch} of {result.best_stage}; saved to {args.out}")


if __name__ == "__main__":
    main()
