"""Measures what PARS costs the engine: predictor scoring time per request, and vLLM step time with
and without the PARS scheduler, idle (one request) and under load (a burst bigger than the batch).

Run: python -m pars.bench.overhead [--model DIR] [--predictor DIR]   (prints a table; docs/vllm.md)

OMP_NUM_THREADS is pinned (default 1) for every engine: on an oversubscribed 2-core machine two OpenMP
threads make vLLM's CPU steps 10-100x slower, and that effect would swamp any scheduler difference.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pars.integrations.vllm import build_llm, make_tiny_model, scheduler_of
from pars.paths import bundled_data_dir


def real_prompts(n: int) -> list[str]:
    with (bundled_data_dir() / "prompts.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line)["prompt"] for line, _ in zip(lines, range(n))]


def load_predictor(predictor_dir: Path | None, scratch: Path) -> tuple[Any, Path]:
    """The given checkpoint, else an untrained head on the real encoder (same compute cost)."""
    from pars.predictor import Predictor

    if predictor_dir is not None:
        return Predictor.load(predictor_dir), predictor_dir
    predictor = Predictor.untrained()
    return predictor, predictor.save(scratch / "predictor")


def time_ms(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def scoring_overhead(predictor: Any, repeats: int = 20) -> dict[str, float]:
    prompts = real_prompts(32)
    one = statistics.median(time_ms(lambda: predictor.score(prompts[:1]), repeats))
    batch = statistics.median(time_ms(lambda: predictor.score(prompts, batch_size=32), max(3, repeats // 4)))
    return {"batch 1: ms/request": one, "batch 32: ms/batch": batch, "batch 32: ms/request": batch / 32}


def step_times(model: Path, policy: str, predictor_dir: Path, n_requests: int, burst: int, max_num_seqs: int,
               tokens: int) -> dict[str, float]:
    """Median and p90 of LLMEngine.step() and of scheduler.schedule(); requests come in bursts of
    `burst`, each burst run to completion (burst 1 = idle engine, one request at a time)."""
    from vllm import SamplingParams

    llm = build_llm(model, policy, predictor_dir=predictor_dir, max_num_seqs=max_num_seqs, max_model_len=4096)
    scheduler = scheduler_of(llm)
    schedule_ms: list[float] = []
    original = scheduler.schedule

    def timed_schedule(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            schedule_ms.append((time.perf_counter() - start) * 1000.0)

    scheduler.schedule = timed_schedule
    engine = llm.llm_engine
    prompts = real_prompts(n_requests)
    params = SamplingParams(max_tokens=tokens, ignore_eos=True, extra_args={"pars_true_length": tokens})
    step_ms: list[float] = []
    for i, prompt in enumerate(prompts):
        engine.add_request(f"r{i}", prompt, params)
        if (i + 1) % burst:
            continue
        while engine.has_unfinished_requests():
            start = time.perf_counter()
            engine.step()
            step_ms.append((time.perf_counter() - start) * 1000.0)
    engine.engine_core.shutdown()
    del llm, engine, scheduler
    gc.collect()
    return {
        "steps": len(step_ms),
        "total s": sum(step_ms) / 1000.0,
        "step p50 ms": statistics.median(step_ms),
        "step p90 ms": statistics.quantiles(step_ms, n=10)[-1],
        "schedule() p50 ms": statistics.median(schedule_ms),
        "schedule() max ms": max(schedule_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, help="model dir [default: a fresh tiny model]")
    parser.add_argument("--predictor", type=Path, help="checkpoint dir [default: untrained head]")
    parser.add_argument("--load-requests", type=int, default=64)
    parser.add_argument("--max-num-seqs", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--omp-threads", type=int, default=1, help="OMP_NUM_THREADS for all engines")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.omp_threads)  # before torch is imported (lazily, below)
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        model = args.model or make_tiny_model(scratch / "tiny-model")
        predictor, predictor_dir = load_predictor(args.predictor, scratch)
        rows: list[tuple[str, dict[str, float]]] = [("scoring (predictor only)", scoring_overhead(predictor))]
        del predictor
        for scenario, n_requests, burst in (("idle", 8, 1), ("load", args.load_requests, args.load_requests)):
            for policy in ("fcfs", "pars"):
                times = step_times(model, policy, predictor_dir, n_requests, burst, args.max_num_seqs, args.tokens)
                rows.append((f"{scenario} {policy}", times))
    for name, values in rows:
        print(f"{name:26s} " + "  ".join(f"{key} {value:8.2f}" for key, value in values.items()))


if __name__ == "__main__":
    main()
