"""`pars bench http`'s outputs: summary.json, summary.md and requests.jsonl.

Every ratio compares setups measured in the same run on the same burst (same prompts and lengths).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pars.bench.http import SYSTEM_PROMPT, HttpResult, ServerSettings
from pars.bench.latency import ratio
from pars.bench.serving_report import machine


def result_rows(result: HttpResult) -> list[dict]:
    """One row per (setup, system prompt), with the mean e2e ratio to FCFS of the same variant."""
    fcfs = {run.system_prompt: run.summary.e2e.mean for run in result.runs if run.setup == "fcfs"}
    loads = {record.name: record for record in result.setups}
    rows = []
    for run in result.runs:
        s = run.summary
        rows.append({
            "setup": run.setup, "system_prompt": run.system_prompt, "requests": s.n,
            "e2e_mean_s": s.e2e.mean, "e2e_p50_s": s.e2e.p50, "e2e_p90_s": s.e2e.p90, "e2e_p99_s": s.e2e.p99,
            "ttft_mean_s": s.ttft.mean, "ttft_p50_s": s.ttft.p50, "ttft_p90_s": s.ttft.p90,
            "spearman_ttft_true_length": run.spearman_ttft_true_length,
            "spearman_ttft_score": run.spearman_ttft_score,
            "e2e_mean_vs_fcfs": ratio(s.e2e.mean, fcfs[run.system_prompt]) if run.system_prompt in fcfs else math.nan,
            "front_end_scored": run.front_end.scored if run.front_end else None,
            "front_end_fallback": run.front_end.fallback if run.front_end else None,
            "front_end_scoring_ms_mean": run.front_end.mean_scoring_ms if run.front_end else None,
            "throughput_rps": s.throughput_rps, "throughput_tok_s": s.throughput_tok_s, "makespan_s": s.makespan_s,
            "loadavg_before": loads[run.setup].loadavg_before if run.setup in loads else None,
            "loadavg_after": loads[run.setup].loadavg_after if run.setup in loads else None,
        })
    return rows


def settings_dict(settings: ServerSettings, result: HttpResult, target_model: str, length_scale: float, seed: int,
                  started_utc: str) -> dict:
    return {
        "started_utc": started_utc,
        "transport": "HTTP to `pars serve` (vLLM OpenAI server) on 127.0.0.1; streamed chat completions; "
                     "client-side times (httpx.AsyncClient, one connection per request)",
        "ttft": "first streamed chunk (vLLM sends the role chunk with the first token's output)",
        "server": asdict(settings), "stream_options": {"include_usage": True},
        "prefix_caching": "vLLM default (on); every setup gets a fresh server and the same requests",
        "target_model": target_model, "prompts": result.prompts,
        "requests": len(result.requests), "length_scale": length_scale, "seed": seed,
        "system_prompt": SYSTEM_PROMPT, "system_prompt_chars": len(SYSTEM_PROMPT),
        "setups": [asdict(record) for record in result.setups], "machine": machine(),
    }


def write_outputs(out: Path, settings: dict, result: HttpResult) -> list[dict]:
    """summary.json, summary.md and requests.jsonl under `out`; returns the rows."""
    out.mkdir(parents=True, exist_ok=True)
    rows = result_rows(result)
    clean = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()} for row in rows]
    (out / "summary.json").write_text(json.dumps({"settings": settings, "runs": clean}, indent=2, allow_nan=False) + "\n")
    with (out / "requests.jsonl").open("w") as handle:
        for run in result.runs:
            for request, score, r in zip(result.requests, result.scores, run.responses):
                handle.write(json.dumps({"setup": run.setup, "system_prompt": run.system_prompt, "index": request.index,
                                         "true_tokens": request.true_tokens, "max_tokens": request.output_tokens,
                                         "score": score, "sent_s": r.sent_s, "first_chunk_s": r.first_chunk_s,
                                         "finish_s": r.finish_s}) + "\n")
    (out / "summary.md").write_text(markdown(settings, rows))
    return rows


COLUMNS = (("setup", "setup", 0), ("system_prompt", "system prompt", 0), ("e2e_mean_s", "mean e2e s", 2),
           ("e2e_p50_s", "p50 s", 2), ("e2e_p90_s", "p90 s", 2), ("e2e_p99_s", "p99 s", 2),
           ("ttft_mean_s", "mean TTFT s", 2), ("spearman_ttft_true_length", "rho(TTFT, length)", 2),
           ("spearman_ttft_score", "rho(TTFT, score)", 2), ("e2e_mean_vs_fcfs", "mean e2e / FCFS", 2),
           ("front_end", "scored / fallback", 0), ("load", "load 1m", 1))


def _cell(row: Mapping[str, Any], key: str, digits: int) -> str:
    if key == "front_end":
        return "-" if row["front_end_scored"] is None else f"{row['front_end_scored']:.0f} / {row['front_end_fallback']:.0f}"
    if key == "load":
        return "-" if row["loadavg_before"] is None else f"{row['loadavg_before'][0]:.1f}-{row['loadavg_after'][0]:.1f}"
    value = row[key]
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def cells(row: Mapping[str, Any]) -> list[str]:
    return [_cell(row, key, digits) for key, _, digits in COLUMNS]


def markdown(settings: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    server = settings["server"]
    lines = [
        "# HTTP serving benchmark: stock vLLM FCFS vs PARS (scheduler class) vs PARS priority mode", "",
        f"- started {settings['started_utc']} UTC; {settings['transport']}",
        f"- a burst of {settings['requests']} streamed chat requests, held-out prompts of {settings['target_model']} "
        f"({settings['prompts']}); max_tokens = true length x {settings['length_scale']} with ignore_eos",
        f"- each burst twice: no system prompt, and a shared {settings['system_prompt_chars']}-character system prompt",
        f"- server: max_num_seqs {server['max_num_seqs']}, max_model_len {server['max_model_len']}, eager, "
        f"OMP_NUM_THREADS={server['omp_threads']}, KV cache {server['kv_cache_gib']} GiB, --stream-interval "
        f"{server['stream_interval']}, include_usage; {settings['prefix_caching']}",
        f"- TTFT: {settings['ttft']}; load: the 1-minute load average before and after each setup's server "
        "(all three in summary.json); scored / fallback: the PARS middleware's /metrics counts over the burst", "",
        "| " + " | ".join(title for _, title, _ in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"
