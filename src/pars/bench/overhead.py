"""What PARS costs: scoring prompts with the predictor (one row per precision and batching option), and,
with `--engine`, vLLM step time with and without the PARS scheduler, idle (one request) and under load.

Run: `pars bench overhead [--predictor DIR] [--prompts 256] [--threads 1] [--engine]` (docs/vllm.md).

Threads are pinned (default 1) for the predictor and every engine: on an oversubscribed 2-core machine two
OpenMP threads make vLLM's CPU steps 10-100x slower, and that effect would swamp any scheduler difference.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pars.integrations.vllm import build_llm, make_tiny_model, scheduler_of
from pars.paths import bundled_data_dir

SCORING_BATCHES = (1, 8, 32)  # batch 1: one call per prompt; 8 and 32: one call over all prompts (amortised)
CALL_SIZE = 32  # "32 per call": calls of 32 arriving prompts each, as the vLLM scheduler makes them


def real_prompts(n: int) -> list[str]:
    with (bundled_data_dir() / "prompts.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line)["prompt"] for line, _ in zip(lines, range(n))]


def time_ms(fn: Callable[[], object], repeats: int, warm_up: bool = True) -> list[float]:
    if warm_up:
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def char_sorted_predictor(predictor: Any) -> Any:
    """The scoring before token sorting, as the baseline row: batches sorted by characters, each tokenised
    on its own and padded to its longest member (with the 128-token cut, 41-73 % padding)."""
    import torch

    from pars.predictor import Predictor

    class CharSorted(Predictor):
        @torch.no_grad()
        def embed(self, prompts: list[str], batch_size: int = 64, precision: str = "fp32") -> torch.Tensor:
            self.ranker.eval()
            order = np.argsort([len(p) for p in prompts], kind="stable")
            vectors = torch.empty(len(prompts), self.ranker.encoder.config.hidden_size)
            for start in range(0, len(prompts), batch_size):
                idx = order[start:start + batch_size]
                batch = self.tokenize([prompts[i] for i in idx])
                vectors[torch.as_tensor(idx)] = self.ranker.embed(batch["input_ids"], batch["attention_mask"])
            return vectors

    return CharSorted(predictor.config, predictor.tokenizer, predictor.ranker, "fp32")


def scoring_options(predictor: Any, student: Any = None) -> list[tuple[str, Any]]:
    """(name, predictor) per row of the cost table; all share the checkpoint's weights, except the distilled
    student (`pars distill`), the last row when given."""
    from pars.predictor import Predictor

    def variant(precision: str, max_length: int) -> Predictor:
        config = replace(predictor.config, max_length=max_length)
        return Predictor(config, predictor.tokenizer, predictor.ranker, precision)

    full = predictor.config.max_length
    return [(f"fp32, char-sorted, {full} tokens (before)", char_sorted_predictor(predictor)),
            (f"fp32, token-sorted, {full} tokens", variant("fp32", full)),
            (f"bf16, token-sorted, {full} tokens", variant("bf16", full)),
            *[(f"bf16, token-sorted, {n} tokens", variant("bf16", n)) for n in (96, 64) if n < full],
            *([(STUDENT_ROW, student)] if student is not None else [])]


STUDENT_ROW = "distilled student (static words, numpy)"


def ms_per_prompt(predictor: Any, prompts: list[str], passes: int) -> dict[str, float]:
    """Median wall time per prompt over `passes` passes, tokenisation included, per batching."""
    def calls_of(size: int) -> Callable[[], None]:
        return lambda: [predictor.score(prompts[i:i + size], batch_size=size) for i in range(0, len(prompts), size)]

    runs = {"1": calls_of(1), **{str(b): (lambda b=b: predictor.score(prompts, batch_size=b)) for b in SCORING_BATCHES[1:]},
            f"{CALL_SIZE} per call": calls_of(CALL_SIZE)}
    predictor.score(prompts[:CALL_SIZE], batch_size=CALL_SIZE)  # warm-up (allocator, oneDNN kernels)
    return {name: statistics.median(time_ms(run, passes, warm_up=False)) / len(prompts) for name, run in runs.items()}


def scoring_cost(predictor: Any, n_prompts: int = 256, passes: int = 3, seed: int = 0,
                 on_row: Callable[[str], None] | None = None, student: Any = None) -> dict[str, Any]:
    """The cost table: ms per prompt at each batching and Kendall tau on the held-out test split (the
    project's `evaluate_predictor`: mean over models and balanced, against true lengths), per scoring option."""
    import torch

    from pars.evaluation import distinct_prompts
    from pars.jobs import evaluate_predictor, test_records
    from pars.predictor.model import bf16_is_native, resolve_precision

    records = test_records(predictor)
    test_prompts = distinct_prompts(records)
    rng = np.random.default_rng(seed)
    prompts = [test_prompts[i] for i in rng.permutation(len(test_prompts))[:n_prompts]]
    load_before = os.getloadavg()
    rows = []
    for name, option in scoring_options(predictor, student):
        if on_row:
            on_row(name)
        evaluation = evaluate_predictor(option, records)
        rows.append({"option": name, "precision": getattr(option, "precision", "fp32"), "max_length": option.max_length,
                     "ms_per_prompt": ms_per_prompt(option, prompts, passes),
                     "kendall_tau": evaluation.overall["kendall_tau"],
                     "balanced_tau": evaluation.balanced["kendall_tau"]})
    baseline = rows[0]["kendall_tau"]
    for row in rows:
        row["tau_change"] = row["kendall_tau"] - baseline
    default = f"{resolve_precision('auto')}, token-sorted, {predictor.config.max_length} tokens"
    return {
        "rows": rows,
        "default_option": default,
        "prompts": len(prompts),
        "test_prompts": len(test_prompts),
        "test_rows": len(records),
        "passes": passes,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_native": bf16_is_native(),
        "cpu": cpu_name(),
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


FOOTPRINT_SCRIPT = """
import json, os, sys, time
import numpy, torch, transformers  # the imports every ranker's process has anyway
from pars.predictor import load_ranker
def rss_mib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
imported = rss_mib()
started = time.perf_counter()
ranker = load_ranker(sys.argv[1])
ranker.score(["warm up"])
print(json.dumps({"load_s": time.perf_counter() - started, "rss_mib": rss_mib() - imported}))
"""


def footprint(directory: Path) -> dict[str, float]:
    """Load time (to the first score) and resident memory a checkpoint adds to a fresh process (its RSS after
    loading and one score, less that after importing numpy, torch and transformers)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", FOOTPRINT_SCRIPT, str(directory)], capture_output=True, text=True,
                          check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


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


def engine_overhead(model: Path | None, predictor_dir: Path, load_requests: int = 64, max_num_seqs: int = 8,
                    tokens: int = 32) -> dict[str, dict[str, float]]:
    """Step times per scenario ("idle": 8 requests one after another; "load": one burst) and policy, on
    `model` or a fresh tiny model."""
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        model = model or make_tiny_model(Path(scratch) / "tiny-model")
        for scenario, n_requests, burst in (("idle", 8, 1), ("load", load_requests, load_requests)):
            for policy in ("fcfs", "pars"):
                rows[f"{scenario} {policy}"] = step_times(model, policy, predictor_dir, n_requests, burst,
                                                          max_num_seqs, tokens)
    return rows
