"""`pars bench sim`'s outputs: the serving benchmark's summary.json / summary.md / plots for replays, and a
table plus a plot for the starvation-bound and ranker-quality studies. Every file says it is simulated."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pars.bench.serving import BenchmarkResult
from pars.bench.serving_report import (TABLE_COLUMNS, fmt, nan_to_none, plot_cdf, plot_latency_vs_rate, run_rows,
                                       spread_rows, table_cells)

SIMULATED = "SIMULATED (pars.sim discrete-event model of vLLM V1 scheduling; not measured on an engine)"


def header(title: str, settings: dict) -> list[str]:
    engine = settings["engine"]
    return [f"# {title}", "", f"**{SIMULATED}**", "",
            f"- profile `{settings['profile']}`: {settings['profile_source']}",
            f"- engine: max_num_seqs {engine['max_num_seqs']}, token budget {engine['max_num_batched_tokens']}, "
            f"{engine['num_kv_blocks']} KV blocks of {engine['block_size']}, chunked prefill "
            f"{engine['chunked_prefill']}; replicas {settings['replicas']} ({settings['balancer']})",
            f"- ranked policies' starvation rule: {settings['aging']}",
            f"- prompts: {settings['prompts']}; lengths of `{settings['target_model']}`, length scale "
            f"{settings['length_scale']}; FCFS capacity {fmt(settings['capacity_rps'])} req/s",
            f"- command: `{settings['command']}`; simulated in {fmt(settings['wall_s'], 1)} s, load average "
            f"{fmt(settings['load_average_before'][0])} before, {fmt(settings['load_average_after'][0])} after", ""]


def write_replay(out: Path, settings: dict, result: BenchmarkResult) -> list[dict]:
    """summary.json, summary.md, latency_vs_rate.png and latency_cdf.png, as `pars bench serve` writes them."""
    out.mkdir(parents=True, exist_ok=True)
    rows = run_rows(result)
    (out / "summary.json").write_text(json.dumps({"simulated": SIMULATED, "settings": settings,
                                                  "runs": [nan_to_none(r) for r in rows],
                                                  "spread": [nan_to_none(r) for r in spread_rows(rows)]},
                                                 indent=2, allow_nan=False) + "\n")
    lines = header("Simulated serving: FCFS vs PARS vs oracle SJF", settings)
    lines += ["| " + " | ".join(title for _, title, _ in TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    lines += ["| " + " | ".join(table_cells(row)) + " |"
              for row in sorted(rows, key=lambda r: (r["arrival"] != "burst", r["rate"] or 0.0))]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    plot_latency_vs_rate(rows, out / "latency_vs_rate.png")
    plot_cdf(result, out / "latency_cdf.png")
    return rows


def write_study(out: Path, name: str, settings: dict, rows: Sequence[dict], columns: Sequence[str],
                x: str, series: str, plot: bool = True) -> None:
    """`<name>.json`, `<name>.md` and (with `plot`) `<name>.png`: mean and P99 / FCFS against `x`, a line per
    `series`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({"simulated": SIMULATED, "settings": settings,
                                                  "rows": [nan_to_none(r) for r in rows]}, indent=2,
                                                 allow_nan=False) + "\n")
    lines = header(f"Simulated study: {name}", settings)
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row[c], 3) if isinstance(row[c], float) else str(row[c]) for c in columns) + " |"
              for row in rows]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    if plot:
        _plot_study(rows, x, series, out / f"{name}.png", f"{name} (simulated, {settings['profile']})")


def _plot_study(rows: Sequence[dict], x: str, series: str, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric in zip(axes, ("mean_vs_fcfs", "p99_vs_fcfs")):
        for label in dict.fromkeys(str(r[series]) for r in rows):
            points = [(r[x], r[metric]) for r in rows if str(r[series]) == label]
            xs = list(range(len(points))) if isinstance(points[0][0], str) else [p[0] for p in points]
            ax.plot(xs, [p[1] for p in points], marker="o", label=label)
            if isinstance(points[0][0], str):
                ax.set_xticks(xs, [p[0] for p in points], rotation=20, fontsize=8)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_xlabel(x)
        ax.set_ylabel(metric.replace("_vs_fcfs", " latency / FCFS"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
