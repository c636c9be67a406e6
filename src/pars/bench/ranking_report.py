"""The ranking benchmark's report: run scores -> metrics per table row (mean and spread over seeds) -> md/json/png.

Every number is measured on the same test prompts: the overall tau is the mean over models of per-model
tau (never pooled over models or sources: a model is evaluated per source, `source/model`); per-source
columns average the models of one prompt source.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pars.bench.ranking import CROSS_MODELS, LPFT_CHANGES, LPFT_ROW, BenchData, PlanEntry, RunOutcome, RunSpec
from pars.bench.references import NOISE_CEILING_PAIR, ScoreRule, crowd_median, prompt_length, second_run
from pars.data.records import LengthRecord
from pars.evaluation import evaluate_scores, score_table

log = logging.getLogger(__name__)

ALL_MODELS = "all models (mean)"
REFERENCE_LABELS = {"prompt_length": "prompt length (all models)", "crowd_median": "crowd median (all models, not deployable)",
                    "noise_ceiling": "noise ceiling (vicuna-13b-v1.5 only)"}
TABLES = {"main": "Main comparison: the four losses", "frozen": "The four losses, frozen encoder (linear probe only)",
          "ablation": "Ablations of PARS"}


def _overall_or_nan(records: Sequence[LengthRecord], rule: ScoreRule, threshold: float) -> dict[str, float]:
    try:
        return evaluate_scores(records, rule, threshold).overall
    except ValueError:  # no model with enough rows in this subset
        return {"kendall_tau": float("nan"), "pairwise_accuracy": float("nan"), "spearman": float("nan")}


def rule_metrics(records: Sequence[LengthRecord], rule: ScoreRule, threshold: float) -> dict:
    """Overall, balanced, per-source and per-model taus of one scoring rule, plus its tau on the noise-ceiling rows."""
    evaluation = evaluate_scores(records, rule, threshold)
    metrics = {**evaluation.overall, "balanced_kendall_tau": evaluation.balanced["kendall_tau"],
               "per_source": {source: m["kendall_tau"] for source, m in evaluation.per_source.items()},
               "per_model": {m: r.kendall_tau for m, r in evaluation.per_model.items()}}
    try:
        rows, _ = second_run(records, *NOISE_CEILING_PAIR)
        metrics["noise_pair_tau"] = _overall_or_nan(rows, rule, threshold)["kendall_tau"]
    except ValueError:
        metrics["noise_pair_tau"] = float("nan")
    return metrics


def reference_metrics(records: Sequence[LengthRecord], threshold: float) -> dict[str, dict]:
    """Prompt length, crowd median and (if both runs are in the data) the second-run noise ceiling."""
    references = {name: {k: v for k, v in rule_metrics(records, rule, threshold).items() if k != "per_model"}
                  for name, rule in (("prompt_length", prompt_length), ("crowd_median", crowd_median(records)))}
    try:
        rows, rule = second_run(records, *NOISE_CEILING_PAIR)
        references["noise_ceiling"] = {**evaluate_scores(rows, rule, threshold, min_prompts=2).overall,
                                       "pair": list(NOISE_CEILING_PAIR)}
    except ValueError as err:
        log.warning("no noise ceiling: %s", err)
    return references


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    values = [v for v in values if not np.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def row_stats(runs: Sequence[dict], outcomes: Sequence[RunOutcome]) -> dict:
    """Mean and spread over the seeds of one table row."""
    tau, tau_std = _mean_std([r["kendall_tau"] for r in runs])
    balanced, balanced_std = _mean_std([r["balanced_kendall_tau"] for r in runs])
    accuracy, accuracy_std = _mean_std([r["pairwise_accuracy"] for r in runs])
    sources = sorted({s for r in runs for s in r["per_source"]})
    spec = outcomes[0].spec
    return {"balanced_kendall_tau_mean": balanced, "balanced_kendall_tau_std": balanced_std,
            "balanced_kendall_tau_by_seed": {o.spec.seed: r["balanced_kendall_tau"] for r, o in zip(runs, outcomes)},
            "kendall_tau_mean": tau, "kendall_tau_std": tau_std, "pairwise_accuracy_mean": accuracy,
            "pairwise_accuracy_std": accuracy_std, "spearman_mean": _mean_std([r["spearman"] for r in runs])[0],
            "noise_pair_tau_mean": _mean_std([r["noise_pair_tau"] for r in runs])[0],
            "per_source": {s: _mean_std([r["per_source"].get(s, np.nan) for r in runs])[0] for s in sources},
            "seeds": len(runs), "encoder": spec.recipe(),
            "train_seconds_mean": float(np.mean([o.train_seconds for o in outcomes]))}


def summarise(plan: Sequence[PlanEntry], outcomes: Mapping[RunSpec, RunOutcome], data: BenchData,
              threshold: float = 0.2, settings: dict | None = None) -> dict:
    """The benchmark's summary (what summary.json holds) from the runs that have finished so far."""
    metrics = {spec: rule_metrics(data.test, score_table(data.test_prompts, np.asarray(o.scores)), threshold)
               for spec, o in outcomes.items()}
    rows: dict[tuple[str, str], list[RunSpec]] = defaultdict(list)
    for entry in plan:
        if entry.spec in outcomes:
            rows[(entry.table, entry.row)].append(entry.spec)
    tables: dict[str, dict] = defaultdict(dict)
    for (table, row), specs in rows.items():
        tables[table][row] = row_stats([metrics[s] for s in specs], [outcomes[s] for s in specs])
    cross = {}
    for (table, row), specs in rows.items():
        if table == "cross_model":
            evaluated = metrics[specs[0]]["per_model"]
            tested = [key for model in CROSS_MODELS for key in evaluated if key.rsplit("/", 1)[-1] == model]
            cross[row] = {m: _mean_std([metrics[s]["per_model"][m] for s in specs])[0] for m in tested}
            cross[row][ALL_MODELS] = tables[table][row]["kendall_tau_mean"]
    references = reference_metrics(data.test, threshold)
    loads = [value for o in outcomes.values() if o.load_average for value in o.load_average]
    return {"settings": {**(settings or {}), "runs": len(outcomes),
                         "train_seconds_total": round(sum(o.train_seconds for o in outcomes.values())),
                         # over the runs that recorded it: train_seconds are only comparable on an idle machine
                         "load_average_range": [round(min(loads), 2), round(max(loads), 2)] if loads else None,
                         "data": data.source, "split": data.split.to_dict(),
                         "test_prompts": len(data.test_prompts), "test_rows": len(data.test),
                         "evaluated_models": len(metrics[next(iter(metrics))]["per_model"]) if metrics else 0,
                         "pair_threshold": threshold},
            "methods": tables.get("main", {}), "frozen": tables.get("frozen", {}),
            "ablations": tables.get("ablation", {}), "cross_model": cross,
            "cross_model_seeds": {row: s["seeds"] for row, s in tables.get("cross_model", {}).items()},
            # balanced where there are sources to balance; the noise ceiling is one model's tau
            "references": {name: r.get("balanced_kendall_tau", r["kendall_tau"]) for name, r in references.items()},
            "reference_details": references}


def _fmt(value: float, spread: float | None = None) -> str:
    if value is None or np.isnan(value):
        return "n/a"
    return f"{value:.3f}" if spread is None else f"{value:.3f} ± {spread:.3f}"


def stats_table(rows: Mapping[str, dict], sources: Sequence[str]) -> list[str]:
    head = ["row", "encoder", "balanced tau", "tau (mean over models)", "pair accuracy", "Spearman", *sources,
            "vicuna (noise rows)", "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in rows.items():
        cells = [name, s["encoder"], _fmt(s["balanced_kendall_tau_mean"], s["balanced_kendall_tau_std"]),
                 _fmt(s["kendall_tau_mean"], s["kendall_tau_std"]),
                 _fmt(s["pairwise_accuracy_mean"], s["pairwise_accuracy_std"]), _fmt(s["spearman_mean"]),
                 *[_fmt(s["per_source"].get(src, np.nan)) for src in sources], _fmt(s["noise_pair_tau_mean"]),
                 str(s["seeds"])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def seed_gaps(first: dict, second: dict) -> str:
    """`first` minus `second` in balanced tau on each seed both have, e.g. "+0.010, -0.002 (ahead on 1 of 2)"."""
    ours, theirs = first["balanced_kendall_tau_by_seed"], second["balanced_kendall_tau_by_seed"]
    gaps = [ours[seed] - theirs[seed] for seed in sorted(ours) if seed in theirs]
    return ", ".join(f"{gap:+.3f}" for gap in gaps) + f" (ahead on {sum(g > 0 for g in gaps)} of {len(gaps)})"


def headline(summary: dict) -> list[str]:
    """Plain-number answers to the benchmark's questions, derived from the tables."""
    methods, refs = summary["methods"], summary["references"]
    if not methods:
        return ["No run has finished yet."]
    best = max(methods, key=lambda m: methods[m]["balanced_kendall_tau_mean"])
    lines = [f"- Best loss by balanced tau (mean over sources of each source's mean over models): **{best}** "
             f"({_fmt(methods[best]['balanced_kendall_tau_mean'])}; mean over models "
             f"{_fmt(methods[best]['kendall_tau_mean'])})."]
    if "margin" in methods:
        for key, label in (("balanced_kendall_tau_mean", "balanced tau"), ("kendall_tau_mean", "mean tau over models")):
            gaps = ", ".join(f"{m} {methods['margin'][key] - s[key]:+.3f}" for m, s in methods.items() if m != "margin")
            lines.append(f"- margin (PARS) minus each other loss, {label}: {gaps}.")
        lines.append("- Seed by seed (same seed: same head initialisation and batch order), margin minus each other "
                     "loss, balanced tau: " + "; ".join(f"{m} {seed_gaps(methods['margin'], s)}"
                                                        for m, s in methods.items() if m != "margin") + ".")
    ablations = summary["ablations"]
    recipe = ablations.get(LPFT_ROW)
    changed_rows = [row for row in LPFT_CHANGES if row != LPFT_ROW and row in ablations] if recipe else []
    for row in changed_rows:
        change = ablations[row]
        lines.append(f"- pars train's recipe (margin, LP-FT) against \"{row}\", balanced tau: "
                     f"{_fmt(recipe['balanced_kendall_tau_mean'], recipe['balanced_kendall_tau_std'])} against "
                     f"{_fmt(change['balanced_kendall_tau_mean'], change['balanced_kendall_tau_std'])}; seed by seed "
                     f"{seed_gaps(recipe, change)}.")
    if "noise_ceiling" in refs:
        lines.append("- On vicuna-13b-v1.5's test prompts (where the second run exists): noise ceiling "
                     f"{_fmt(refs['noise_ceiling'])}; " + ", ".join(
                         f"{m} {_fmt(s['noise_pair_tau_mean'])}" for m, s in methods.items()) + ".")
    if "crowd_median" in refs:
        lines.append(f"- Crowd median (not deployable) {_fmt(refs['crowd_median'])}, prompt length "
                     f"{_fmt(refs['prompt_length'])} (balanced tau).")
    return lines


def summary_markdown(summary: dict) -> str:
    settings = summary["settings"]
    sources = sorted({s for table in ("methods", "frozen", "ablations") for r in summary[table].values()
                      for s in r["per_source"]})
    lines = ["# Ranking benchmark", "",
             f"Test prompts: {settings['test_prompts']} ({settings['test_rows']} rows, "
             f"{settings['evaluated_models']} models), split {settings['split']}. Balanced tau is the mean over sources "
             "of each source's mean over its models (the sources' columns); Kendall tau-b and pair accuracy "
             f"(pairs with a length gap >= {settings['pair_threshold']}) are means over models of per-model values; "
             "± is the standard deviation over seeds. Settings: "
             + ", ".join(f"{k}={v}" for k, v in settings.items() if k not in ("split", "test_prompts", "test_rows")),
             "", "## Headline", "", *headline(summary)]
    for key, title in (("methods", TABLES["main"]), ("frozen", TABLES["frozen"]), ("ablations", TABLES["ablation"])):
        if summary[key]:
            lines += ["", f"## {title}", "", *stats_table(summary[key], sources)]
    lines += ["", "## Reference points (same test prompts)", "",
              "| reference | balanced tau | tau (mean over models) | pair accuracy |", "|---|---|---|---|"]
    for name, r in summary["reference_details"].items():
        lines.append(f"| {name} | {_fmt(r.get('balanced_kendall_tau', np.nan))} | {_fmt(r['kendall_tau'])} | "
                     f"{_fmt(r['pairwise_accuracy'])} |")
    if summary["cross_model"]:
        columns = list(next(iter(summary["cross_model"].values())))
        lines += ["", "## Cross-model: Kendall tau-b on each test model (rows: trained on)", "",
                  "| trained on | " + " | ".join(columns) + " | seeds |", "|" + "---|" * (len(columns) + 2)]
        for row, values in summary["cross_model"].items():
            lines.append(f"| {row} | " + " | ".join(_fmt(values.get(c, np.nan)) for c in columns)
                         + f" | {summary['cross_model_seeds'][row]} |")
    return "\n".join(lines) + "\n"


def _bar_plot(ax, rows: Mapping[str, dict], title: str) -> None:
    names = list(rows)
    ax.bar(names, [rows[n]["balanced_kendall_tau_mean"] for n in names],
           yerr=[rows[n]["balanced_kendall_tau_std"] for n in names], capsize=4, color="tab:blue")
    ax.set_title(title)
    ax.set_ylabel("balanced Kendall tau-b (mean over sources)")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")


def write_plots(summary: dict, out: Path) -> list[Path]:
    """tau per method (error bars: std over seeds; lines: reference points), ablations, the cross-model heat-map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    panels = [(summary[k], TABLES[t]) for k, t in (("methods", "main"), ("frozen", "frozen")) if summary[k]]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), sharey=True, squeeze=False)
        for ax, (rows, title) in zip(axes[0], panels):
            _bar_plot(ax, rows, title)
            for (name, value), style in zip(summary["references"].items(), ("dotted", "dashed", "dashdot")):
                ax.axhline(value, linestyle=style, color="gray", label=REFERENCE_LABELS.get(name, name))
            ax.legend(fontsize=8, loc="center right")
        fig.tight_layout()
        written.append(out / "tau_by_method.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    if summary["ablations"]:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        _bar_plot(ax, summary["ablations"], TABLES["ablation"])
        fig.tight_layout()
        written.append(out / "ablations.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    if summary["cross_model"]:
        rows = list(summary["cross_model"])
        columns = list(summary["cross_model"][rows[0]])
        grid = np.array([[summary["cross_model"][r].get(c, np.nan) for c in columns] for r in rows])
        fig, ax = plt.subplots(figsize=(1.4 * len(columns) + 4, 0.6 * len(rows) + 2.5))
        image = ax.imshow(grid, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(columns)), [c.replace("/", "/\n") for c in columns], rotation=30, ha="right",
                      fontsize=8)
        ax.set_yticks(range(len(rows)), rows)
        for i in range(len(rows)):
            for j in range(len(columns)):
                ax.text(j, i, _fmt(grid[i, j]), ha="center", va="center", color="white", fontsize=9)
        ax.set_xlabel("tested on (test prompts)")
        ax.set_ylabel("trained on")
        fig.colorbar(image, ax=ax, label="Kendall tau-b")
        fig.tight_layout()
        written.append(out / "cross_model.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    return written


def _jsonable(value):
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def write_report(summary: dict, out: Path) -> list[Path]:
    """summary.md, summary.json (NaN written as null) and the PNG plots; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(summary_markdown(summary))
    (out / "summary.json").write_text(json.dumps(_jsonable(summary), indent=2) + "\n")
    return [out / "summary.md", out / "summary.json", *write_plots(summary, out)]
