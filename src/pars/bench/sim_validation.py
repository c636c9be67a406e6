"""Replay a real `pars bench serve` run in the simulator and compare latencies per (policy, workload).

requests.jsonl holds each request's arrival, engine-stamped first/last token times and output length,
not its prompt. Prompts are reproduced from the run's summary.json instead: a workload's prompts depend
only on the pool (bundled test split of `target_model`, the split of the pars checkpoint) and the seed
(`assign_prompts(pool, n, seed)`, shared by every arrival process), and every reproduced prompt's true
length is checked against the file's `true_tokens`. Prompt tokens = the prompt's token count under the
served model's tokenizer (with special tokens, as vLLM tokenises a text prompt). Sizes: FCFS_SIZE for
fcfs, `oracle_size(output_tokens)` for oracle (the length it is told), the checkpoint's scores for
predicted policies; other diagnostics (pars-priority, pars-ahead) are skipped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from pars.bench.workload import assign_prompts
from pars.predictor.checkpoint import holds_checkpoint
from pars.scheduling import AgingRule, SchedulerSettings
from pars.sim import FCFS_SIZE, EngineConfig, SimRequest, StepProfile, oracle_size, simulate

TOLERANCE = 0.15
PREDICTED = ("pars", "pars-engine", "pointwise", "listmle", "classify")
SUPPORTED = ("fcfs", "oracle", *PREDICTED)
BLOCK_SIZE = 16  # vLLM's default KV block size on this CPU backend


class ValidationError(ValueError):
    """The served run cannot be replayed (missing files, unreproducible prompts)."""


@dataclass(frozen=True)
class ServedRun:
    policy: str
    repeat: int
    arrival: str
    rate: float | None
    records: tuple[dict, ...]  # sorted by index

    @property
    def workload(self) -> str:
        return "burst" if self.arrival == "burst" else f"{self.arrival} {self.rate:.2f}/s"


def load_runs(requests_file: Path) -> list[ServedRun]:
    if not requests_file.exists():
        raise ValidationError(f"{requests_file}: no such file; run `pars bench serve` first or pass --requests-file")
    groups: dict[tuple, list[dict]] = {}
    for number, line in enumerate(requests_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            key = (row["policy"], row["repeat"], row["arrival"], row["rate"])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValidationError(f"{requests_file}:{number}: not a `pars bench serve` request record ({error})") from None
        groups.setdefault(key, []).append(row)
    return [ServedRun(*key, tuple(sorted(rows, key=lambda r: r["index"]))) for key, rows in groups.items()]


def served_prompts(settings: dict, n: int) -> list[tuple[str, int]]:
    """The (prompt, true_tokens) of requests 0..n-1 of any workload of n requests in the run."""
    from pars.bench.serving import split_of, workload_pool

    if "bundled data" not in settings.get("prompts", ""):
        raise ValidationError(f"the run replayed {settings.get('prompts')!r}; only runs of the bundled test split "
                              "can be reproduced")
    predictor = next((p["predictor"] for p in settings["policies"] if p["policy"] == "pars" and p["predictor"]), None)
    split = split_of(Path(predictor) if predictor and holds_checkpoint(predictor) else None)
    pool, _, _ = workload_pool(None, settings["target_model"], split)
    return [(p.prompt, p.true_tokens) for p in assign_prompts(pool, n, settings["plan"]["seed"])]


def engine_config(settings: dict, max_num_batched_tokens: int | None = None) -> EngineConfig:
    """The run's limits; KV blocks from kv_cache_gib at 2 bytes per K/V element (vLLM's CPU backend logs
    1,048,576 tokens for the tiny model at 1 GiB); the token budget defaults to max_model_len (4096, as
    vLLM chose for these runs)."""
    engine = settings["engine"]
    config = json.loads((Path(engine["model"]) / "config.json").read_text())
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    per_token = 2 * config["num_hidden_layers"] * config.get("num_key_value_heads", config["num_attention_heads"]) * head_dim * 2
    blocks = int(engine["kv_cache_gib"] * 2**30 // per_token // BLOCK_SIZE)
    return EngineConfig(num_kv_blocks=blocks, max_num_seqs=engine["max_num_seqs"],
                        max_num_batched_tokens=max_num_batched_tokens or engine["max_model_len"], block_size=BLOCK_SIZE)


def aging_of(settings: dict, policy: str) -> AgingRule:
    """The ranked schedulers' aging from the run's engine settings (defaults where unset); none for fcfs."""
    if policy == "fcfs":
        return AgingRule()
    engine = settings["engine"]
    given = {key: float(engine[key]) for key in ("aging_rate", "max_wait_s", "fcfs_wait_factor")
             if engine.get(key) is not None}
    return SchedulerSettings.from_sources({"pars": given}, {}).aging


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q))


def validate(summary_file: Path, requests_file: Path, profile: StepProfile, scoring_ms: float = 0.0,
             max_num_batched_tokens: int | None = None) -> dict:
    """Rows of real vs simulated mean and P90 end-to-end latency, and whether policy rankings agree."""
    if not summary_file.exists():
        raise ValidationError(f"{summary_file}: no such file; it is written beside requests.jsonl by `pars bench serve`")
    settings = json.loads(summary_file.read_text())["settings"]
    runs = load_runs(requests_file)
    config = engine_config(settings, max_num_batched_tokens)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(settings["engine"]["model"])
    n_max = max(len(run.records) for run in runs)
    prompts = served_prompts(settings, n_max)
    prompt_tokens = [len(ids) for ids in tokenizer([p for p, _ in prompts])["input_ids"]]
    scores = _scores(settings, runs, [p for p, _ in prompts])
    rows, skipped = [], sorted({run.policy for run in runs if run.policy not in SUPPORTED})
    for run in sorted((r for r in runs if r.policy in SUPPORTED), key=lambda r: (r.repeat, r.arrival != "burst", r.rate or 0, r.policy)):
        requests = []
        for record in run.records:
            i = record["index"]
            if prompts[i][1] != record["true_tokens"]:
                raise ValidationError(f"request {i} of {run.policy} {run.workload}: reproduced prompt has true length "
                                      f"{prompts[i][1]}, the file says {record['true_tokens']}; cannot replay this run")
            size = (FCFS_SIZE if run.policy == "fcfs" else oracle_size(record["output_tokens"]) if run.policy == "oracle"
                    else float(scores[run.policy][i]))
            requests.append(SimRequest(i, record["arrival_s"], prompt_tokens[i], record["output_tokens"], size))
        requests.sort(key=lambda r: r.arrival_s)
        run_config = replace(config, scoring_ms=scoring_ms) if run.policy in PREDICTED else config
        result = simulate(requests, profile, run_config, aging_of(settings, run.policy))
        sim_e2e = result.finish_s - result.arrival_s
        real_e2e = np.array([r["finish_s"] - r["arrival_s"] for r in run.records])
        row = {"policy": run.policy, "repeat": run.repeat, "workload": run.workload, "n": len(requests),
               "real_mean_s": float(real_e2e.mean()), "sim_mean_s": float(sim_e2e.mean()),
               "real_p90_s": _percentile(real_e2e, 90), "sim_p90_s": _percentile(sim_e2e, 90)}
        row["mean_ratio"] = row["sim_mean_s"] / row["real_mean_s"]
        row["p90_ratio"] = row["sim_p90_s"] / row["real_p90_s"]
        row["mean_within"] = abs(row["mean_ratio"] - 1) <= TOLERANCE
        row["p90_within"] = abs(row["p90_ratio"] - 1) <= TOLERANCE
        rows.append(row)
    rankings = rank_agreement(rows)
    return {"rows": rows, "rankings": rankings, "skipped_policies": skipped,
            "within_15pct": {"mean": sum(r["mean_within"] for r in rows), "p90": sum(r["p90_within"] for r in rows),
                             "rows": len(rows)},
            "rankings_agree": sum(r["agree"] for r in rankings), "workloads": len(rankings),
            "profile": {"name": profile.name, "source": profile.source},
            "engine": {**asdict(config), "predicted_scoring_ms": scoring_ms},
            "served": {"summary": str(summary_file), "requests": str(requests_file),
                       "started_utc": settings.get("started_utc"), "machine": settings.get("machine")}}


def rank_agreement(rows: Sequence[dict]) -> list[dict]:
    """Per (repeat, workload): policies ordered by real and by simulated mean latency, and whether they agree."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["repeat"], row["workload"]), []).append(row)
    result = []
    for (repeat, workload), members in groups.items():
        real = [r["policy"] for r in sorted(members, key=lambda r: r["real_mean_s"])]
        sim = [r["policy"] for r in sorted(members, key=lambda r: r["sim_mean_s"])]
        result.append({"repeat": repeat, "workload": workload, "real_order": real, "sim_order": sim, "agree": real == sim})
    return result


def _scores(settings: dict, runs: Sequence[ServedRun], prompts: list[str]) -> dict[str, np.ndarray]:
    """Each predicted policy's checkpoint scores for the prompts (loaded once per checkpoint)."""
    from pars.predictor import load_ranker

    wanted = {run.policy for run in runs if run.policy in PREDICTED}
    directories = {p["policy"]: p["predictor"] for p in settings["policies"] if p["policy"] in wanted}
    scores: dict[str, np.ndarray] = {}
    cache: dict[str, np.ndarray] = {}
    for policy in wanted:
        directory = directories.get(policy) or directories.get("pars")
        if not directory or not holds_checkpoint(directory):
            raise ValidationError(f"policy {policy}: predictor checkpoint {directory!r} of the run is not here")
        if directory not in cache:
            cache[directory] = np.asarray(load_ranker(directory).score(prompts), dtype=float)
        scores[policy] = cache[directory]
    return scores


def write_validation(result: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "validation.json"
    path.write_text(json.dumps(result, indent=2, allow_nan=False, default=_finite) + "\n")
    return path


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not JSON serialisable: {value!r}")
