"""`pars bench route`'s outputs: summary.json, summary.md, requests.jsonl and routing.png.

Every ratio compares setups measured in the same repeat on the same workload (same prompts, lengths and
arrival times) against FCFS round-robin.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from pars.bench.latency import ratio
from pars.bench.routing import BASELINE, ReplicaSettings, RoutingResult
from pars.bench.serving_report import fmt, machine, nan_to_none, spread_cell
from pars.bench.workload import ArrivalPlan

RATIOS = ("mean_vs_fcfs", "p99_vs_fcfs")


def run_rows(result: RoutingResult) -> list[dict]:
    baseline = {(r.repeat, r.workload): r.summary.e2e for r in result.runs if r.setup == BASELINE}
    rows = []
    for run in result.runs:
        e2e, fcfs = run.summary.e2e, baseline.get((run.repeat, run.workload))
        rows.append({
            "setup": run.setup, "repeat": run.repeat, "workload": run.workload, "load": run.load, "n": run.summary.n,
            "mean_s": e2e.mean, "p50_s": e2e.p50, "p90_s": e2e.p90, "p99_s": e2e.p99,
            "mean_vs_fcfs": ratio(e2e.mean, fcfs.mean) if fcfs else math.nan,
            "p99_vs_fcfs": ratio(e2e.p99, fcfs.p99) if fcfs else math.nan,
            "throughput_rps": run.summary.throughput_rps, "router_scoring_ms": run.scoring_ms,
            "per_replica": run.per_replica(), "loadavg_before": run.loadavg_before, "loadavg_after": run.loadavg_after,
        })
    return rows


def spread_rows(rows: Sequence[dict]) -> list[dict]:
    """Per (setup, workload): each ratio's median, min and max over the repeats."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["setup"], row["workload"]), []).append(row)
    spread = []
    for (setup, workload), members in groups.items():
        entry: dict = {"setup": setup, "workload": workload, "load": members[0]["load"], "repeats": len(members)}
        for metric in RATIOS:
            values = sorted(v for r in members if not math.isnan(v := r[metric]))
            entry[metric] = {"median": statistics.median(values), "min": values[0], "max": values[-1]} if values else None
        spread.append(entry)
    return spread


def markdown(settings: dict, rows: Sequence[dict], spread: Sequence[dict]) -> str:
    lines = ["# Routing benchmark: two vLLM replicas behind `pars route`", "",
             f"- started {settings['started_utc']} UTC; {settings['replicas']['replicas']} stock vLLM replicas "
             f"(`--scheduling-policy priority`, max_num_seqs {settings['replicas']['max_num_seqs']}, "
             f"model `{settings['replicas']['model']}`), each setup its own `pars route` in front",
             f"- prompts: {settings['prompts']}; lengths of `{settings['target_model']}` as max_tokens (ignore_eos), "
             f"length scale {settings['plan']['length_scale']}; non-streamed completions, client-side latency",
             f"- capacity (FCFS round-robin burst throughput): {fmt(settings['capacity_rps'])} req/s; "
             f"machine: {settings['machine']['cpu']}, {settings['machine']['cores']} cores",
             "", "## Ratios to FCFS round-robin (median over repeats, min-max)", "",
             "| setup | workload | mean / FCFS | P99 / FCFS |", "|---|---|---|---|"]
    lines += [f"| {s['setup']} | {s['workload']} | {spread_cell(s['mean_vs_fcfs'])} | {spread_cell(s['p99_vs_fcfs'])} |"
              for s in spread]
    lines += ["", "## Every run", "",
              "| setup | repeat | workload | n | mean s | P50 s | P99 s | mean / FCFS | P99 / FCFS | router scoring ms "
              "| per replica | load 1m before-after |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        replicas = " / ".join(str(n) for _, n in sorted(r["per_replica"].items()))
        lines.append(f"| {r['setup']} | {r['repeat']} | {r['workload']} | {r['n']} | {fmt(r['mean_s'])} | "
                     f"{fmt(r['p50_s'])} | {fmt(r['p99_s'])} | {fmt(r['mean_vs_fcfs'])} | {fmt(r['p99_vs_fcfs'])} "
                     f"| {fmt(r['router_scoring_ms'], 1)} | {replicas} | "
                     f"{r['loadavg_before'][0]:.1f}-{r['loadavg_after'][0]:.1f} |")
    return "\n".join(lines) + "\n"


def plot(spread: Sequence[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(s["workload"] for s in spread))
    setups = list(dict.fromkeys(s["setup"] for s in spread))
    fig, axes = plt.subplots(1, len(RATIOS), figsize=(6 * len(RATIOS), 4), squeeze=False)
    width = 0.8 / len(setups)
    for ax, metric in zip(axes[0], RATIOS):
        for k, setup in enumerate(setups):
            cells = {s["workload"]: s[metric] for s in spread if s["setup"] == setup}
            xs = [i + k * width for i, w in enumerate(workloads) if cells.get(w)]
            values = [cells[w] for w in workloads if cells.get(w)]
            ax.bar(xs, [v["median"] for v in values], width, label=setup,
                   yerr=[[v["median"] - v["min"] for v in values], [v["max"] - v["median"] for v in values]])
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_xticks([i + width * (len(setups) - 1) / 2 for i in range(len(workloads))], workloads)
        ax.set_title(metric.replace("_vs_fcfs", " latency / FCFS round-robin"))
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def settings_dict(replicas: ReplicaSettings, plan: ArrivalPlan, result: RoutingResult, repeats: int,
                  started_utc: str) -> dict:
    return {"started_utc": started_utc, "replicas": asdict(replicas), "plan": asdict(plan), "repeats": repeats,
            "prompts": result.prompts, "target_model": result.target_model, "capacity_rps": result.capacity_rps,
            "machine": machine()}


def write_outputs(out: Path, settings: dict, result: RoutingResult) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    rows = run_rows(result)
    spread = spread_rows(rows)
    (out / "summary.json").write_text(json.dumps({"settings": nan_to_none(settings),
                                                  "runs": [nan_to_none(r) for r in rows], "spread": spread},
                                                 indent=2, allow_nan=False) + "\n")
    with (out / "requests.jsonl").open("w") as handle:
        for run in result.runs:
            for i, a in enumerate(run.answers):
                handle.write(json.dumps({"setup": run.setup, "repeat": run.repeat, "workload": run.workload,
                                         "index": i, **asdict(a)}) + "\n")
    (out / "summary.md").write_text(markdown(settings, rows, spread))
    plot(spread, out / "routing.png")
    return rows
