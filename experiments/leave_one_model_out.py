"""Leave-one-model-out: how much k of a served model's own lengths buy a ranker that never saw that model.

Issue 10, item 3 ("learning the served model"). experiments/adaptation_probe.py continued the default ranker, whose
consensus labels included the model's own train-split lengths; here each held-out model M is really held out:

1. GENERIC: a ranker trained like `pars train` on the bundled data with M's labels left out
   (`TrainJob(models=every non-variant model except M)`, consensus labels). M is left out by NAME, in every
   source, together with its other names in the bundle (ALIASES: the same model's second run or its name in
   another source). For an extra-set model (FLASK, not in the default training data) the generic ranker is the
   default one, trained on every bundled model.
2. ADAPTED: the generic ranker saved as a checkpoint and continued on k of M's lengths on TRAIN-split prompts
   (per sample seed, one seeded shuffle of M's train rows and k its first rows, so a seed's logs are nested; all
   of them when M has fewer, and the row says the actual k; tau is the mean over seeds, with its std), head
   only: `TrainJob(data=LOG, init_from=GENERIC, freeze_encoder=True, head_epochs=60)`, what
   `pars train --init-from GENERIC --data LOG --freeze-encoder` runs. The log's prompts are all train-split
   prompts, so (as for a user's log) there are no validation prompts and the last of the 60 epochs is kept.
3. PER-MODEL: a ranker trained on M's own train-split lengths alone (all of them, M's validation rows choose
   the epoch), same recipe as the generic.
Reference (`generic_all_tau`, skip with --skip-generic-all): the same recipe on every bundled model, M included:
the situation of experiments/adaptation_probe.py, so the two generic columns show what leaving M out costs.

All are scored by Kendall tau-b on M's TEST-split prompts (`PromptSplit(seed=0)` by normalised prompt text; the
extra set's prompts are split the same way, so a prompt is test everywhere or nowhere; an extra-set prompt that is a
near-duplicate of a bundled prompt is left out, `pars.jobs.load_extra_records`, since the two texts may hash to different parts).

Recipe (`--recipe`): `frozen` (default) trains the generic and per-model rankers as `pars train --freeze-encoder`
does: a linear probe (60 head-only epochs) on the frozen pretrained MiniLM's cached vectors. Every ranker then
shares the pretrained encoder, so one embedding cache serves the whole run: each prompt is encoded once, and
once ever with the disk cache under artifacts/embeddings/ (keyed by a fingerprint of the encoder's weights,
pooling and max length). `lp-ft` is `pars train`'s default recipe (probe, then 3 fine-tuning epochs of the
whole ranker): about 5 minutes a fine-tuning epoch over the 1,292 train prompts on 2 shared cores (measured
2026-12-01, load average 4-8), so 15-20 minutes per distinct generic ranker; affordable for one model, hours for
all. The adaptations are then head-only on that generic's fine-tuned encoder (its own cache).

Training is `pars train`'s own `run_training` with the shared cache (nothing saved, so no score quantiles,
which no tau depends on).
Timings: `seconds` is the adaptation's wall time here (checkpoint and log loading, head training on cached
vectors); a user's `pars train --init-from` also encodes the log's k prompts once: `user_seconds_estimate` adds
k times the encoder's measured seconds per prompt in this run.

    .venv/bin/python experiments/leave_one_model_out.py                       # 7 models, k = 100, 300, 1000
    .venv/bin/python experiments/leave_one_model_out.py --models alpaca_eval/vicuna-13b-v1.5 --ks 100 \
        --out results/ranking/leave_one_model_out_reduced.json           # a reduced run

    .venv/bin/python experiments/leave_one_model_out.py --models "flask/FLASK bard" --generic artifacts/predictor \
        --adapt head,full --sample-seeds 0 --skip-generic-all --out results/ranking/leave_one_model_out_full.json

`--adapt full` continues the whole ranker (`pars train --init-from GENERIC --data LOG`: the 60-epoch probe, then
--ft-epochs of fine-tuning; scored through its own encoder). `--generic DIR` takes a saved checkpoint as the
generic ranker, only for extra-set models, which no bundled checkpoint has seen (e.g. `pars train`'s default).
Writes `--out` (JSON) and the same name with .png (tau against k), and prints a table; `--report-only` redraws
both from `--out`. `--recipe lp-ft --ft-epochs 1` is a cheaper LP-FT (pars train's default is 3 epochs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from pars.bench.serving_report import machine
from pars.data import PromptSplit
from pars.data.loaders import load_records
from pars.data.records import LengthRecord
from pars.evaluation import distinct_prompts
from pars.jobs import TrainJob, evaluate_predictor, load_extra_records, run_training
from pars.paths import PROJECT_ROOT, bundled_data_dir
from pars.predictor.embeddings import EmbeddingCache, disk_cache
from pars.predictor.model import Predictor
from pars.predictor.training import CONTINUATION_LR, TrainSettings

# (source, model): the held-out models; "flask" rows come from data/extra_lengths.jsonl.gz
MODELS = (
    ("alpaca_eval", "gpt4_1106_preview"),
    ("alpaca_eval", "vicuna-13b-v1.5"),
    ("arena_bench_v1", "palm-2-chat-bison-001"),  # no other name of it in the bundle
    ("arena_bench_v1", "vicuna-13b-v1.5"),  # the probe's arena-bench model; same generic ranker as the AlpacaEval one
    ("arena_hard_v2.0", "o3-mini-2025-01-31"),
    ("arena_hard_v2.0", "sky-t1-32b"),
    ("flask", "FLASK bard"),  # 1,700 rows (every FLASK model but davinci_003 has them); no Bard in the bundle
)
EXTRA_SOURCES = {"flask"}
# other names of the same model in the bundle: left out of the generic ranker's labels with it
ALIASES = {
    "gpt4_1106_preview": ("gpt-4-1106-preview",),  # arena_bench_v1's name for it
    "vicuna-13b-v1.5": ("vicuna-13b-v1.5-togetherai",),  # a second run (the noise-ceiling twin)
}
KS = (100, 300, 1000)
RECIPES = ("frozen", "lp-ft")
ADAPTATIONS = ("head", "full")  # --init-from with --freeze-encoder (seconds), or the whole ranker (minutes)
HEAD_EPOCHS = 60  # `pars train`'s default, with or without --init-from
LABEL = "tok_llama3"


@dataclass
class Fit:
    predictor: Predictor
    seconds: float  # wall time of the whole fit (starting checkpoint, records, training)
    train_seconds: float  # the training loop alone
    train_prompts: int
    val_prompts: int
    best: str  # best stage/epoch


def fit(job: TrainJob, records: Sequence[LengthRecord] | None, cache: EmbeddingCache) -> Fit:
    """`pars train`'s training (`run_training`) for `job` on `records` (None: the job's data, as `pars train`
    reads a log), with `cache` for the head-only stages; nothing saved."""
    started = time.perf_counter()
    predictor, result, parts = run_training(job, records=records, embeddings=cache)
    return Fit(predictor, time.perf_counter() - started, predictor.config.training["train_seconds"],
               predictor.config.training["train_prompts"], len(distinct_prompts(parts["val"])),
               f"{result.best_stage}/{result.best_epoch}")


def kendall_tau(predictor: Predictor, test_rows: Sequence[LengthRecord], cache: EmbeddingCache | None) -> float:
    """Kendall tau-b of `predictor` on `test_rows` (one model's), each distinct prompt scored once from `cache`
    (which must hold vectors of this predictor's encoder; None: an encoder of its own, scored by `score`)."""
    return float(evaluate_predictor(predictor, test_rows, embeddings=cache).overall["kendall_tau"])


def parse_models(text: str | None) -> list[tuple[str, str]]:
    if not text:
        return list(MODELS)
    chosen = []
    for item in (part.strip() for part in text.split(",")):
        if "/" in item:
            source, model = item.split("/", 1)
            chosen.append((source, model))
            continue
        matches = [m for m in MODELS if m[1] == item]
        if len(matches) != 1:
            raise SystemExit(f"--models: {item!r} is {'ambiguous' if matches else 'not a default model'}; write SOURCE/MODEL")
        chosen.append(matches[0])
    return chosen


def fmt(tau: float | None) -> str:
    return "-" if tau is None else f"{tau:.3f}"


def print_table(rows: list[dict], ks: Sequence[int]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Leave-one-model-out: Kendall tau-b on the held-out model's test prompts "
                        "(adapted: mean ± std over samples, actual k, seconds per adaptation)")
    modes = [m for m in ADAPTATIONS if any(adaptation_mode(a) == m for row in rows for a in row["adapted"])]
    columns = [(mode, k) for mode in modes for k in ks]
    for name in ("source/model", "test", "generic (M in)", "generic LOO", *[f"{m} k={k}" for m, k in columns],
                 "per-model"):
        table.add_column(name, justify="left" if name == "source/model" else "right", no_wrap=True)
    for row in rows:
        cells = []
        for mode, k in columns:
            a = next((a for a in row["adapted"] if a["k_requested"] == k and adaptation_mode(a) == mode), None)
            cells.append("" if a is None else f"{a['tau']:.3f}±{a['tau_std']:.3f}"
                         + ("" if a["k"] == k else f" k={a['k']}") + f" {a['seconds']:.1f}s")
        table.add_row(f"{row['source']}/{row['model']}", str(row["test_prompts"]), fmt(row["generic_all_tau"]),
                      f"{row['generic_tau']:.3f}", *cells, f"{row['per_model_tau']:.3f}")
    Console(width=220).print(table)


def adaptation_mode(adapted: dict) -> str:
    return adapted.get("mode", "head")  # runs before --adapt existed were head-only


def plot(rows: list[dict], path: Path, recipe: str, generic: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colours = plt.get_cmap("tab10")
    for i, row in enumerate(rows):
        colour = colours(i % 10)
        label = f"{row['model']} ({row['source']})"
        for mode, style in zip(ADAPTATIONS, ("-", ":")):
            points = [a for a in row["adapted"] if adaptation_mode(a) == mode]
            if points:
                ax.errorbar([a["k"] for a in points], [a["tau"] for a in points], yerr=[a["tau_std"] for a in points],
                            marker="o", capsize=3, color=colour, linestyle=style,
                            label=label if mode == "head" else f"{label}, whole ranker")
        ax.axhline(row["generic_tau"], linestyle="--", color=colour, linewidth=1)
        ax.axhline(row["per_model_tau"], linestyle="-.", color=colour, linewidth=1)
    ax.set_xscale("log")
    ticks = sorted({a["k"] for row in rows for a in row["adapted"]})
    ax.set_xticks(ticks, [str(k) for k in ticks])
    ax.minorticks_off()
    ax.set_xlabel("k: the held-out model's lengths the generic ranker is continued on (solid: head only)")
    ax.set_ylabel("Kendall tau-b, held-out model's test prompts")
    trained = f"generic: {generic}, per-model: {recipe} recipe" if generic else f"{recipe} recipe"
    ax.set_title(f"Leave one model out ({trained}); dashed: generic (model left out), dash-dot: per-model",
                 fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="comma-separated SOURCE/MODEL (or a default MODEL name); default: "
                        + ", ".join(f"{s}/{m}" for s, m in MODELS))
    parser.add_argument("--ks", default=",".join(map(str, KS)), help="comma-separated k (default %(default)s)")
    parser.add_argument("--recipe", choices=RECIPES, default="frozen",
                        help="generic and per-model rankers: frozen encoder (default) or pars train's LP-FT")
    parser.add_argument("--sample-seeds", default="0,1,2",
                        help="comma-separated seeds of the shuffles k's rows are taken from (default %(default)s)")
    parser.add_argument("--ft-epochs", type=int, default=TrainSettings().epochs,
                        help="lp-ft only: fine-tuning epochs (default %(default)s, pars train's)")
    parser.add_argument("--adapt", default="head", help="comma-separated adaptations of the generic ranker: head "
                        "(--freeze-encoder, the default) and/or full (probe, then --ft-epochs of the whole ranker)")
    parser.add_argument("--generic", type=Path, help="extra-set models only: this checkpoint is the generic ranker "
                        "(e.g. artifacts/predictor from `pars train`) instead of training one with --recipe")
    parser.add_argument("--skip-generic-all", action="store_true",
                        help="do not train the reference ranker on every bundled model (M included)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--no-disk-cache", action="store_true", help="do not read or write artifacts/embeddings/")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "results" / "ranking" / "leave_one_model_out.json")
    parser.add_argument("--report-only", action="store_true", help="redraw the plot and table from --out; train nothing")
    args = parser.parse_args(argv)
    if args.report_only:
        report = json.loads(args.out.read_text())
        plot(report["rows"], args.out.with_suffix(".png"), report["recipe"], report.get("generic"))
        print_table(report["rows"], report["ks"])
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    models = parse_models(args.models)
    ks = sorted({int(k) for k in args.ks.split(",") if k.strip()})
    sample_seeds = [int(seed) for seed in args.sample_seeds.split(",") if seed.strip()]
    started_at, wall_started, load_before = dt.datetime.now(dt.timezone.utc), time.perf_counter(), os.getloadavg()
    console_log = lambda message: print(f"[{time.perf_counter() - wall_started:7.1f}s] {message}", flush=True)  # noqa: E731

    main_rows = load_records(bundled_data_dir(), label=LABEL)  # every non-variant row, as `pars train` loads them
    extra_rows = (load_extra_records(distinct_prompts(main_rows))
                  if any(source in EXTRA_SOURCES for source, _ in models) else [])
    all_names = sorted({r.model for r in main_rows})
    split = PromptSplit(seed=0)
    console_log(f"loaded {len(main_rows)} bundled rows, {len(extra_rows)} extra rows")

    frozen = args.recipe == "frozen"
    settings = (TrainSettings(freeze_encoder=True, head_epochs=HEAD_EPOCHS) if frozen
                else TrainSettings(head_epochs=HEAD_EPOCHS, epochs=args.ft_epochs))
    adaptations = [mode.strip() for mode in args.adapt.split(",") if mode.strip()]
    if not adaptations or set(adaptations) - set(ADAPTATIONS):
        raise SystemExit(f"--adapt: choose from {', '.join(ADAPTATIONS)}")
    adapt_settings = {"head": TrainSettings(freeze_encoder=True, head_epochs=HEAD_EPOCHS),
                      "full": TrainSettings(head_epochs=HEAD_EPOCHS, epochs=args.ft_epochs, lr=CONTINUATION_LR)}
    if args.generic and not all(source in EXTRA_SOURCES for source, _ in models):
        raise SystemExit("--generic is for extra-set models only: a bundled model is in the checkpoint's labels")

    # the pretrained encoder's vectors: every head-only stage on it reads them, each prompt encoded once
    probe = Predictor.untrained()
    pretrained = EmbeddingCache() if args.no_disk_cache else disk_cache(PROJECT_ROOT / "artifacts" / "embeddings", probe)
    if pretrained.path is not None:
        console_log(f"embedding cache {pretrained.path.relative_to(PROJECT_ROOT)}")
    # the encoder's rate, for what a user's run (no cache) spends encoding its log: 256 train-split prompts
    sample = random.Random(0).sample(sorted(distinct_prompts(split.partition(main_rows)["train"])), 256)
    encode_started = time.perf_counter()
    probe.embed(sample)
    seconds_per_prompt = (time.perf_counter() - encode_started) / len(sample)
    console_log(f"encoder: {1 / seconds_per_prompt:.0f} prompts/s")
    del probe

    rows: list[dict] = []
    saved = 0
    generics: dict[frozenset[str], tuple[Path, float, EmbeddingCache]] = {}
    with tempfile.TemporaryDirectory(prefix="pars-loo-") as scratch:
        for source, model in models:
            extra = source in EXTRA_SOURCES
            pool = extra_rows if extra else main_rows
            own = [r for r in pool if (r.source, r.model) == (source, model)]
            if not own:
                raise SystemExit(f"no rows for {source}/{model}")
            parts = split.partition(own)
            test_rows, train_rows = parts["test"], parts["train"]
            left_out = frozenset() if extra else frozenset({model, *ALIASES.get(model, ())}) & set(all_names)

            # 1. the generic ranker without M (shared by models with the same left-out set)
            if left_out not in generics and args.generic:
                generics[left_out] = (args.generic, 0.0, EmbeddingCache())  # its encoder may be fine-tuned
                generic_predictor = Predictor.load(args.generic, precision="fp32")
                console_log(f"generic ranker: {args.generic}")
            elif left_out not in generics:
                job = TrainJob(models=tuple(n for n in all_names if n not in left_out) if left_out else None,
                               label_column=LABEL, settings=settings)
                records = [r for r in main_rows if r.model not in left_out]  # = load_job_records(job)
                console_log(f"generic ranker without {sorted(left_out) or 'nothing'}: {len(records)} rows")
                result = fit(job, records, pretrained)
                directory = Path(scratch) / f"generic-{len(generics)}"
                result.predictor.save(directory)
                cache = pretrained if frozen else EmbeddingCache()  # lp-ft: the fine-tuned encoder's own vectors
                generics[left_out] = (directory, result.seconds, cache)
                generic_predictor = result.predictor
                console_log(f"  trained in {result.seconds:.1f}s ({result.train_prompts} prompts, best {result.best})")
            else:
                generic_predictor = Predictor.load(generics[left_out][0], precision="fp32")
            generic_dir, generic_seconds, generic_cache = generics[left_out]
            # the reference: every bundled model, M included (what the probe continued)
            if frozenset() not in generics and not args.skip_generic_all:
                console_log("generic ranker on every bundled model (nothing left out)")
                result = fit(TrainJob(label_column=LABEL, settings=settings), main_rows, pretrained)
                directory = Path(scratch) / "generic-all"
                result.predictor.save(directory)
                generics[frozenset()] = (directory, result.seconds, pretrained if frozen else EmbeddingCache())
                console_log(f"  trained in {result.seconds:.1f}s ({result.train_prompts} prompts, best {result.best})")
            generic_all_tau = None
            if frozenset() in generics:
                all_dir, _, all_cache = generics[frozenset()]
                generic_all_tau = kendall_tau(Predictor.load(all_dir, precision="fp32"), test_rows, all_cache)
            row = {"source": source, "model": model, "left_out": sorted(left_out), "train_rows": len(train_rows),
                   "test_prompts": len(distinct_prompts(test_rows)), "test_rows": len(test_rows),
                   "generic_tau": kendall_tau(generic_predictor, test_rows, generic_cache),
                   "generic_seconds": round(generic_seconds, 1), "generic_all_tau": generic_all_tau, "adapted": []}
            generic_cache.vectors(generic_predictor, distinct_prompts(train_rows))  # so adaptations time training alone
            del generic_predictor
            console_log(f"{source}/{model}: generic tau {row['generic_tau']:.3f} (with the model in its labels: "
                        f"{fmt(generic_all_tau)}) on {row['test_prompts']} test prompts")

            # 2. adapted: the generic continued on k of M's train-split lengths (per seed, nested samples), head
            # only and/or the whole ranker
            shuffles = [random.Random(seed).sample(train_rows, len(train_rows)) for seed in sample_seeds]
            seen: set[tuple[str, int]] = set()
            for mode, k in ((mode, k) for mode in adaptations for k in ks):
                actual = min(k, len(train_rows))
                if (mode, actual) in seen:  # k beyond M's train rows: the same logs as the last k
                    continue
                seen.add((mode, actual))
                runs = []
                for seed, shuffled in zip(sample_seeds, shuffles):
                    log = Path(scratch) / f"log-{len(rows)}-{k}-{seed}.jsonl"
                    log.write_text("".join(json.dumps({"prompt": r.prompt, "response_tokens": r.response_tokens}) + "\n"
                                           for r in shuffled[:k]))
                    job = TrainJob(data=str(log), init_from=str(generic_dir), label_column=LABEL,
                                   settings=adapt_settings[mode])
                    result = fit(job, None, generic_cache)
                    runs.append({"seed": seed, "log_prompts": result.train_prompts,
                                 "tau": kendall_tau(result.predictor, test_rows, generic_cache if mode == "head" else None),
                                 "seconds": round(result.seconds, 2), "train_seconds": round(result.train_seconds, 2)})
                taus = [run["tau"] for run in runs]
                seconds = float(np.mean([run["seconds"] for run in runs]))
                log_prompts = float(np.mean([run["log_prompts"] for run in runs]))
                row["adapted"].append({"mode": mode, "k_requested": k, "k": actual, "tau": float(np.mean(taus)),
                                       "tau_std": float(np.std(taus)), "seconds": round(seconds, 2),
                                       "user_seconds_estimate": round(seconds + log_prompts * seconds_per_prompt, 1),
                                       "runs": runs})
                console_log(f"  {mode} k={actual}: tau {np.mean(taus):.3f} ± {np.std(taus):.3f} over {len(runs)} samples, "
                            f"{seconds:.1f}s each")

            # 3. per-model: M's own train-split lengths alone (its validation rows pick the epoch), same recipe
            job = TrainJob(models=(model,), label_column=LABEL, settings=settings)
            result = fit(job, own, pretrained)
            cache = pretrained if frozen else EmbeddingCache()
            row.update(per_model_tau=kendall_tau(result.predictor, test_rows, cache), per_model_seconds=round(result.seconds, 1),
                       per_model_train_prompts=result.train_prompts, per_model_val_prompts=result.val_prompts)
            console_log(f"  per-model tau {row['per_model_tau']:.3f} ({result.train_prompts} prompts, {result.seconds:.1f}s)")
            rows.append(row)
            if pretrained.path is not None and pretrained.encoded > saved:  # after each model: a stopped run keeps them
                pretrained.save()
                saved = pretrained.encoded

    load_after = os.getloadavg()
    report = {
        "protocol": "leave one model out; Kendall tau-b on the held-out model's test-split prompts (PromptSplit seed 0)",
        "recipe": args.recipe,
        "generic": str(args.generic) if args.generic else None,
        "recipe_detail": ("generic and per-model: linear probe (60 head-only epochs) on the frozen pretrained MiniLM "
                          "(pars train --freeze-encoder)" if frozen else
                          f"generic and per-model: pars train's LP-FT (60 head-only epochs, then {args.ft_epochs} "
                          "fine-tuning epochs)")
                         + (f"; generic: {args.generic}" if args.generic else "")
                         + "; adapted: --init-from the generic on a k-row log, head: --freeze-encoder --head-epochs 60"
                         + f", full: --head-epochs 60 --epochs {args.ft_epochs}",
        "settings": asdict(settings), "adapt_settings": {mode: asdict(adapt_settings[mode]) for mode in adaptations},
        "label": LABEL,
        "label_mode": "consensus", "ks": ks, "sample_seeds": sample_seeds, "command": " ".join(sys.argv),
        "rows": rows,
        "encoder": {"prompts_encoded": pretrained.encoded, "encode_seconds": round(pretrained.encode_seconds, 1),
                    "seconds_per_prompt": round(seconds_per_prompt, 4)},
        "started_utc": started_at.isoformat(timespec="seconds"), "wall_seconds": round(time.perf_counter() - wall_started, 1),
        "load_average_before": [round(x, 2) for x in load_before], "load_average_after": [round(x, 2) for x in load_after],
        "machine": machine(),  # the serving benchmark's record of CPU, cores, memory, versions
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    plot(rows, args.out.with_suffix(".png"), args.recipe, report["generic"])
    print_table(rows, ks)
    print(f"wrote {args.out} and {args.out.with_suffix('.png')} in {report['wall_seconds']:.0f}s "
          f"(load average {load_before[0]:.2f} -> {load_after[0]:.2f})")


if __name__ == "__main__":
    main()
