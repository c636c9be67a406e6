"""A vLLM scheduler that records every engine step's shape and duration, for fitting `pars.sim.StepProfile`.

The engine core may run in its own process, so records go to the JSONL file named by PARS_STEP_LOG
(written in batches, whenever the engine goes idle, and at shutdown). Scheduling itself is stock FCFS.
`record_steps` drives an engine with it for `pars bench calibrate`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from vllm.v1.core.sched.scheduler import Scheduler

from pars.integrations.vllm.engine import scoped_environ

STEP_LOG_ENV = "PARS_STEP_LOG"
FLUSH_EVERY = 256
STEP_FIELDS = ("prefill_tokens", "decode_seqs", "kv_tokens", "seconds")


class _Warmup(NamedTuple):
    prompt_tokens: int = 64
    output_tokens: int = 8


class StepRecordingScheduler(Scheduler):
    """Stock `Scheduler`; per step with scheduled tokens, one record of (prefill_tokens, decode_seqs,
    kv_tokens, seconds). seconds = the step's period, from the start of its `schedule()` to the start of the
    next one, when the engine still had requests after it: that is what a busy engine's clock advances by, the
    engine loop's own work (new requests in, outputs out) included. A step after which the engine went idle
    counts from the start of `schedule()` to the end of `update_from_output()` (the model runs in between).

    `schedule()` advances each request's `num_computed_tokens` by its scheduled tokens before it returns
    (`_update_after_schedule`), so after it: computed before = num_computed_tokens - scheduled, and the
    context (kv) tokens = num_computed_tokens. A decode is one scheduled token with computed before =
    num_tokens - 1; every other scheduled token is prefill (prompts, chunks, recompute after preemption).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.step_log = os.environ.get(STEP_LOG_ENV)
        self.step_records: list[dict[str, float]] = []
        self._unwritten = 0
        self._current: tuple[Any, float, dict[str, int]] | None = None
        self._busy: tuple[dict[str, int], float] | None = None  # a step whose period ends at the next schedule()

    def schedule(self, *args: Any, **kwargs: Any):  # noqa: ANN201 - vLLM's SchedulerOutput
        start = time.perf_counter()
        if self._busy is not None:  # the step before ran back to back with this one: its period ends now
            record, started = self._busy
            self._record({**record, "seconds": start - started})
            self._busy = None
        output = super().schedule(*args, **kwargs)
        prefill = decode = kv = 0
        for req_id, scheduled in output.num_scheduled_tokens.items():
            request = self.requests[req_id]
            before = request.num_computed_tokens - scheduled
            if scheduled == 1 and before == request.num_tokens - 1:
                decode += 1
            else:
                prefill += scheduled
            kv += request.num_computed_tokens
        self._current = (output, start, {"prefill_tokens": prefill, "decode_seqs": decode, "kv_tokens": kv})
        return output

    def update_from_output(self, scheduler_output: Any, model_runner_output: Any):  # noqa: ANN201
        result = super().update_from_output(scheduler_output, model_runner_output)
        end = time.perf_counter()
        current, self._current = self._current, None
        busy = self.has_requests()
        if current is not None and current[0] is scheduler_output and scheduler_output.total_num_scheduled_tokens:
            if busy:
                self._busy = (current[2], current[1])
            else:
                self._record({**current[2], "seconds": end - current[1]})
        if self._unwritten >= FLUSH_EVERY or (self._unwritten and not busy):  # a batch, or idle
            self.flush_steps()
        return result

    def _record(self, record: dict[str, float]) -> None:
        self.step_records.append(record)
        self._unwritten += 1

    def flush_steps(self) -> None:
        """Append the records not yet written to the PARS_STEP_LOG file (none is kept when it is unset)."""
        if self.step_log and self._unwritten:
            with open(self.step_log, "a") as handle:
                for record in self.step_records[-self._unwritten:]:
                    handle.write(json.dumps(record) + "\n")
        self._unwritten = 0

    def shutdown(self) -> None:
        self.flush_steps()
        super().shutdown()


def read_steps(path: Path) -> np.ndarray:
    """Rows (prefill_tokens, decode_seqs, kv_tokens, seconds) from a step log."""
    rows = [[json.loads(line)[key] for key in STEP_FIELDS] for line in path.read_text().splitlines() if line.strip()]
    return np.asarray(rows, dtype=float).reshape(-1, 4)


def record_steps(model_dir: Path, batches: Sequence[Sequence[Any]], max_num_seqs: int = 4,
                 max_model_len: int = 4096, on_batch: Callable[[int], None] | None = None,
                 warmup: bool = True) -> np.ndarray:
    """Run each batch (items with prompt_tokens and output_tokens) through one real engine, a `LLM.generate`
    call each, and return the recorded steps.

    Prompts are random token ids (exact lengths, no tokenizer in the way); outputs are exact (ignore_eos).
    A warm-up batch, not recorded, comes first when `warmup` is set.
    """
    from vllm import LLM, SamplingParams

    with tempfile.TemporaryDirectory() as tmp:
        step_log = Path(tmp) / "steps.jsonl"
        environ = {"OMP_NUM_THREADS": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "1",
                   "PARS_STEP_LOG": str(step_log)}
        with scoped_environ(environ):
            llm = LLM(str(model_dir), scheduler_cls=f"{__name__}.StepRecordingScheduler", max_num_seqs=max_num_seqs,
                      max_model_len=max_model_len, enforce_eager=True, enable_prefix_caching=False, seed=0)
        try:
            vocab = llm.llm_engine.model_config.get_vocab_size()
            rng = np.random.default_rng(1)

            def run(batch: Sequence[Any]) -> None:
                prompts = [{"prompt_token_ids": rng.integers(3, vocab, r.prompt_tokens).tolist()} for r in batch]
                params = [SamplingParams(max_tokens=r.output_tokens, ignore_eos=True, temperature=0.0, detokenize=False)
                          for r in batch]
                llm.generate(prompts, params, use_tqdm=False)

            if warmup:
                run([_Warmup()] * max_num_seqs)
                _wait_for(step_log)
                step_log.unlink(missing_ok=True)
            for k, batch in enumerate(batches):
                run(batch)
                if on_batch:
                    on_batch(k + 1)
        finally:
            llm.llm_engine.engine_core.shutdown()
        _wait_for(step_log)
        return read_steps(step_log) if step_log.exists() else np.empty((0, 4))


def _wait_for(path: Path, timeout_s: float = 5.0) -> None:
    """The engine core writes the log after its last step, asynchronously to the caller's return."""
    deadline = time.monotonic() + timeout_s
    size = -1
    while time.monotonic() < deadline:
        current = path.stat().st_size if path.exists() else -1
        if current >= 0 and current == size:
            return
        size = current
        time.sleep(0.2)
