"""`pars bench ...`: the benchmarks that print and save comparison tables and plots."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from pars.cli.checks import (check_checkpoints, check_choice, check_output_dir, check_output_file, check_positive,
                             check_served_model, start_served_benchmark)
from pars.cli.common import (PredictorOption, bench_app, console, fail, load_predictor, parse_floats, print_rows,
                             print_table, progress_bar)
from pars.paths import default_predictor_dir

@bench_app.command("rank")
def bench_rank_command(
    quick: Annotated[bool, typer.Option(help="Frozen encoder, one seed, no 256-token run (under 10 minutes)")] = False,
    out: Annotated[Path, typer.Option(help="Where summary.md/json, plots and the run cache go")] = Path("results/ranking"),
    data: Annotated[Optional[Path], typer.Option(help="Bundled data dir or a JSONL file [default: data/]")] = None,
    report_only: Annotated[bool, typer.Option(help="Rebuild the report from cached runs; train nothing")] = False,
) -> None:
    """Rank test prompts with PARS (margin) against listmle, pointwise and classify, references, ablations, cross-model."""
    from pars.bench.ranking import build_plan, load_bench_data, run_plan
    from pars.bench.ranking_report import summarise, write_report
    from pars.data import DataError
    from pars.paths import PROJECT_ROOT
    from pars.predictor import EncoderNotFound

    check_output_dir(out, "--out")
    try:
        bench = load_bench_data(str(data) if data else None)
        plan = build_plan(quick, bench.models)
        with progress_bar() as progress:
            task = progress.add_task("ranking runs", total=len({e.spec for e in plan}), info="")

            def on_run(done: int, total: int, spec, cached: bool) -> None:
                progress.update(task, completed=done, info=f"{spec.key}{' (cached)' if cached else ''}")

            outcomes = run_plan(plan, bench, out, None if quick or data else PROJECT_ROOT / "artifacts", on_run,
                                train_missing=not report_only)
    except (DataError, EncoderNotFound, ValueError) as err:
        fail(str(err))
    summary = summarise(plan, outcomes, bench, settings={"quick": quick})
    for path in write_report(summary, out):
        console.print(f"wrote {path}")
    table = Table(title=f"Kendall tau-b on {summary['settings']['test_prompts']} test prompts (balanced: mean over "
                        "sources of each source's mean over models)")
    for column in ("method", "encoder", "balanced tau (± std)", "mean over models", "pair accuracy", "seeds"):
        table.add_column(column)
    for name, row in summary["methods"].items():
        table.add_row(name, row["encoder"],
                      f"{row['balanced_kendall_tau_mean']:.3f} ± {row['balanced_kendall_tau_std']:.3f}",
                      f"{row['kendall_tau_mean']:.3f} ± {row['kendall_tau_std']:.3f}",
                      f"{row['pairwise_accuracy_mean']:.3f}", str(row["seeds"]))
    for name, value in summary["references"].items():
        table.add_row(f"reference: {name}", "", f"{value:.3f}", "", "", "")
    print_table(table)


@bench_app.command("overhead")
def bench_overhead_command(
    predictor: PredictorOption = None,
    prompts: Annotated[int, typer.Option(min=1, help="Held-out test prompts to time (a seeded sample)")] = 256,
    threads: Annotated[int, typer.Option(min=1, help="Torch, OpenMP and tokenizer threads (predictor and engines)")] = 1,
    passes: Annotated[int, typer.Option(min=1, help="Timed passes per cell; the median is reported")] = 3,
    out: Annotated[Path, typer.Option(help="JSON file: the table and the machine facts")] = Path("results/overhead/scoring.json"),
    engine: Annotated[bool, typer.Option(help="Also time vLLM engine steps, FCFS vs PARS, idle and under load")] = False,
    model: Annotated[Optional[Path], typer.Option(help="Engine model dir for --engine [default: a fresh tiny model]")] = None,
) -> None:
    """What scoring a prompt costs (ms at batch 1, 8, 32) and the test-split Kendall tau, per precision and batching."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # before torch is imported: the engines read it too
    if threads == 1:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # else the Rust tokenizer batches on every core
    import torch

    from pars.bench.overhead import STUDENT_ROW, engine_overhead, footprint, scoring_cost
    from pars.predictor.checkpoint import holds_checkpoint
    from pars.predictor.loading import STUDENT_DIR

    check_output_file(out, "--out")
    if engine:
        check_served_model(model)
    torch.set_num_threads(threads)
    teacher_dir = predictor or default_predictor_dir()
    loaded = load_predictor(teacher_dir)
    student_dir = teacher_dir / STUDENT_DIR
    student = load_predictor(student_dir) if holds_checkpoint(student_dir) else None
    with console.status("timing") as status:
        result = scoring_cost(loaded, prompts, passes, on_row=lambda name: status.update(f"timing {name}"),
                              student=student)
        status.update("load time and memory")
        result["footprint"] = {"teacher": footprint(teacher_dir),
                               **({"student": footprint(student_dir)} if student is not None else {})}
    before, after = (" / ".join(f"{x:.1f}" for x in result[f"load_average_{k}"]) for k in ("before", "after"))
    table = Table(title=f"Scoring cost, ms per prompt (tokenisation included), {result['threads']} thread(s), "
                        f"{result['prompts']} test prompts; tau on {result['test_prompts']} test prompts; "
                        f"load average {before} -> {after}")
    batchings = list(result["rows"][0]["ms_per_prompt"])
    for column in ("option", *(f"batch {b}" if b.isdigit() else b for b in batchings), "Kendall tau", "tau change",
                   "balanced tau", "load s", "memory MiB"):
        table.add_column(column, justify="left" if column == "option" else "right")
    for row in result["rows"]:
        name = row["option"] + (" (default)" if row["option"] == result["default_option"] else "")
        size = result["footprint"].get("student" if row["option"] == STUDENT_ROW else "teacher")
        table.add_row(name, *(f"{row['ms_per_prompt'][b]:.3f}" for b in batchings), f"{row['kendall_tau']:.4f}",
                      f"{row['tau_change']:+.4f}", f"{row['balanced_tau']:.3f}",
                      f"{size['load_s']:.2f}" if size else "-", f"{size['rss_mib']:.0f}" if size else "-")
    print_table(table)
    if engine:
        result["engine"] = engine_overhead(model, predictor or default_predictor_dir())
        steps = Table(title=f"vLLM engine steps, OMP_NUM_THREADS={threads}")
        columns = list(next(iter(result["engine"].values())))
        for column in ("scenario", *columns):
            steps.add_column(column, justify="left" if column == "scenario" else "right")
        for scenario, values in result["engine"].items():
            steps.add_row(scenario, *(f"{values[c]:.2f}" if isinstance(values[c], float) else str(values[c])
                                      for c in columns))
        print_table(steps)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {out}")


@bench_app.command("serve")
def bench_serve_command(
    policies: Annotated[Optional[str], typer.Option(help="Comma-separated: fcfs, pars, oracle, pointwise, listmle, classify, pars-teacher and pars-student (pars forced to one ranker; pars serves the student when --predictor holds one), pars-priority (stock priority scheduling), pars-engine and pars-ahead (diagnostics) [default: fcfs,pars,oracle + baselines with checkpoints]")] = None,
    rates: Annotated[Optional[str], typer.Option(help="Absolute arrival rates, req/s (overrides --loads)")] = None,
    loads: Annotated[str, typer.Option(help="Rates as fractions of the FCFS burst capacity")] = "0.5,0.7,0.85,0.95,1.1",
    burst: Annotated[int, typer.Option(min=0, help="Requests in the burst run that measures FCFS's capacity (0: none; then give --rates)")] = 80,
    extra_bursts: Annotated[Optional[str], typer.Option(help="Comma-separated sizes of more burst runs (e.g. 40)")] = None,
    trace: Annotated[Optional[str], typer.Option(help="azure-conv | azure-code | mooncake-conv instead of Poisson")] = None,
    requests: Annotated[int, typer.Option(min=1, help="Requests per rate run")] = 300,
    duration: Annotated[Optional[float], typer.Option(help="Seconds of arrivals per rate run (overrides --requests)")] = None,
    length_scale: Annotated[float, typer.Option(help="Multiply every response length (keeps their order)")] = 1.0,
    target_model: Annotated[Optional[str], typer.Option(help="Whose true response lengths to replay [default: gpt-3.5-turbo-1106, or the one model in --data]")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Replay your own traffic: a JSONL file as `pars train --data` reads (prompt, response_tokens, optional model) instead of the bundled test split")] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Run everything this many times (fresh engines) and report the spread")] = 1,
    model: Annotated[Optional[Path], typer.Option(help="Served model dir [default: artifacts/tiny-model, built if missing]")] = None,
    max_num_seqs: Annotated[int, typer.Option(min=1, help="vLLM's running batch limit")] = 4,
    kv_cache_gib: Annotated[int, typer.Option(min=1, help="VLLM_CPU_KVCACHE_SPACE")] = 1,
    aging_rate: Annotated[Optional[float], typer.Option(min=0.0, help="Starvation bound: key units per second waited")] = None,
    max_wait_s: Annotated[Optional[float], typer.Option(help="Starvation bound: hard maximum wait, s (> 0; inf: off)")] = None,
    fcfs_wait_factor: Annotated[Optional[float], typer.Option(min=1.0, help="Starvation bound: go first after waiting this many times the estimated FCFS wait")] = None,
    score_budget_ms: Annotated[Optional[float], typer.Option(min=0.0, help="Most an engine step waits for pending scores")] = None,
    pin: Annotated[bool, typer.Option(help="Keep the model worker alone on the CPUs vLLM bound it to, the engine core and front end (requests, scoring) on the rest, as a GPU server keeps host work off the accelerator")] = False,
    predictor: PredictorOption = None,
    seed: Annotated[int, typer.Option(help="Seed of prompt choice and arrivals")] = 0,
    quick: Annotated[bool, typer.Option(help="fcfs, pars, oracle only; burst 40 + one Poisson run at 0.95 load, 80 requests (a few minutes)")] = False,
    out: Annotated[Path, typer.Option(help="Where summary.md/json, requests.jsonl and plots go")] = Path("results/serving"),
) -> None:
    """Replay test prompts on a real vLLM engine under each policy; latency, throughput, ratios vs FCFS and oracle."""
    from dataclasses import replace

    from pars.bench.pinning import PinningError
    from pars.bench.serving import (BenchmarkError, EngineSettings, ensure_model, resolve_policies,
                                    run_serving_benchmark, split_of, workload_pool)
    from pars.data import DataError
    from pars.predictor import CheckpointError
    from pars.bench.serving_report import SHORT_COLUMNS, settings_dict, table_cells, write_outputs
    from pars.bench.traces import TRACES
    from pars.bench.workload import QUICK_PLAN, ArrivalPlan
    from pars.paths import PROJECT_ROOT

    for option, value in (("--duration", duration), ("--max-wait-s", max_wait_s)):
        check_positive(option, value)
    if trace is not None:  # else it fails only after the burst run, minutes in
        check_choice("--trace", trace, sorted(TRACES))
    started = start_served_benchmark(length_scale, out, model)
    try:
        specs = resolve_policies(policies.split(",") if policies else (["pars", "oracle"] if quick else None), predictor)
        check_checkpoints(s.predictor for s in specs if s.predictor is not None)
        plan = ArrivalPlan(requests, burst, parse_floats(loads), parse_floats(rates), duration, trace, length_scale, seed,
                           tuple(int(n) for n in parse_floats(extra_bursts)))
        plan = replace(plan, **QUICK_PLAN) if quick else plan
        engine = EngineSettings(str(ensure_model(model or PROJECT_ROOT / "artifacts" / "tiny-model")), max_num_seqs,
                                kv_cache_gib=kv_cache_gib, aging_rate=aging_rate, max_wait_s=max_wait_s,
                                fcfs_wait_factor=fcfs_wait_factor, score_budget_ms=score_budget_ms, pin=pin)
        split = split_of(next((s.predictor for s in specs if s.name == "pars"), None))
        pool, target, prompts = workload_pool(data, target_model, split)
        result = run_serving_benchmark(engine, specs, plan, pool, repeats)
    except (BenchmarkError, CheckpointError, DataError, PinningError, ValueError) as err:
        fail(str(err))
    rows = write_outputs(out, settings_dict(engine, plan, target, prompts, result, started), result)
    ordered = sorted(rows, key=lambda r: (r["repeat"], r["arrival"] != "burst", r["rate"] or 0.0))
    print_rows(f"Serving latency, length scale {plan.length_scale} ({out / 'summary.md'})",
               [title for _, title, _ in SHORT_COLUMNS], 3, [table_cells(row, SHORT_COLUMNS) for row in ordered])


@bench_app.command("http")
def bench_http_command(
    predictor: PredictorOption = None,
    model: Annotated[Optional[Path], typer.Option(help="Served model dir [default: artifacts/tiny-model, built if missing]")] = None,
    requests: Annotated[int, typer.Option(min=1, help="Streamed chat requests per burst")] = 80,
    length_scale: Annotated[float, typer.Option(help="max_tokens = true length x this (ignore_eos)")] = 1.0,
    setups: Annotated[str, typer.Option(help="Comma-separated, run in this order: fcfs, pars, priority")] = "fcfs,pars,priority",
    target_model: Annotated[str, typer.Option(help="Whose true response lengths to replay")] = "gpt-3.5-turbo-1106",
    max_num_seqs: Annotated[int, typer.Option(min=1, help="vLLM's running batch limit")] = 4,
    stream_interval: Annotated[int, typer.Option(min=1, help="vLLM --stream-interval: tokens per streamed event after the first")] = 8,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of each server (one at a time, on 127.0.0.1)")] = 8000,
    seed: Annotated[int, typer.Option(help="Seed of the prompt choice")] = 0,
    out: Annotated[Path, typer.Option(help="Where summary.md/json, requests.jsonl and server logs go")] = Path("results/http"),
) -> None:
    """Streamed chat bursts over HTTP to `pars serve`, per setup, with and without a shared system prompt."""
    from pars.bench.http import ServerSettings, run_http_benchmark
    from pars.bench.http_report import COLUMNS, cells, settings_dict, write_outputs
    from pars.bench.serving import BenchmarkError, ensure_model
    from pars.paths import PROJECT_ROOT
    from pars.predictor import CheckpointError
    from pars.predictor.checkpoint import check_checkpoint

    started = start_served_benchmark(length_scale, out, model)
    directory = predictor or default_predictor_dir()
    try:
        check_checkpoint(directory)
        settings = ServerSettings(str(ensure_model(model or PROJECT_ROOT / "artifacts" / "tiny-model")), str(directory),
                                  port=port, max_num_seqs=max_num_seqs, stream_interval=stream_interval)
        names = [s.strip() for s in setups.split(",") if s.strip()]
        result = run_http_benchmark(settings, names, requests, length_scale, target_model, out, seed)
    except (BenchmarkError, CheckpointError, ValueError) as err:
        fail(str(err))
    rows = write_outputs(out, settings_dict(settings, result, target_model, length_scale, seed, started), result)
    print_rows(f"HTTP burst of {requests}, length scale {length_scale} ({out / 'summary.md'})",
               [title for _, title, _ in COLUMNS], 2, [cells(row) for row in rows])


@bench_app.command("calibrate")
def bench_calibrate_command(
    out: Annotated[Path, typer.Option(help="Profile JSON to write")],
    model: Annotated[Optional[Path], typer.Option(help="Served model dir [default: artifacts/tiny-model, built if missing]")] = None,
    max_num_seqs: Annotated[int, typer.Option(min=2, help="vLLM's running batch limit (1 crashes the CPU build)")] = 4,
    max_model_len: Annotated[int, typer.Option(min=64, help="vLLM's max_model_len")] = 4096,
    rounds: Annotated[int, typer.Option(min=2, help="generate() calls of 1..2 x max_num_seqs requests")] = 48,
    max_prompt: Annotated[int, typer.Option(min=32, help="Longest prompt, tokens")] = 2000,
    name: Annotated[Optional[str], typer.Option(help="Profile name [default: cpu-<model dir name>]")] = None,
) -> None:
    """Time every step of the real vLLM engine on varied batches and fit the simulator's step-time profile."""
    from pars.bench.calibrate import CalibrationPlan, calibrate
    from pars.bench.serving import ensure_model
    from pars.paths import PROJECT_ROOT

    check_served_model(model)
    check_output_file(out, "--out")
    if max_prompt + 200 > max_model_len:
        fail(f"--max-prompt {max_prompt} leaves no room for outputs within --max-model-len {max_model_len}")
    model_dir = ensure_model(model or PROJECT_ROOT / "artifacts" / "tiny-model")
    plan = CalibrationPlan(rounds=rounds, max_num_seqs=max_num_seqs, max_prompt=max_prompt)
    with progress_bar() as progress:
        task = progress.add_task("calibrating", total=rounds, info="starting the engine")
        try:
            profile, steps = calibrate(model_dir, plan, max_model_len, name,
                                       on_batch=lambda done: progress.update(task, completed=done, info=""))
        except (RuntimeError, ValueError) as err:
            fail(str(err))
    out.parent.mkdir(parents=True, exist_ok=True)
    profile.save(out)
    quality = profile.quality
    print_rows(f"Step profile {profile.name} ({len(steps)} steps) -> {out}", ["term", "value"], 1, [
        ["base", f"{profile.base_s * 1e3:.4f} ms"], ["per prefill token", f"{profile.per_prefill_token_s * 1e6:.4f} us"],
        ["per decode seq", f"{profile.per_decode_seq_s * 1e6:.3f} us"], ["per KV token", f"{profile.per_kv_token_s * 1e9:.3f} ns"],
        ["R^2", f"{quality.r2:.3f}"], ["mean relative error", f"{quality.mean_relative_error:.3f}"]])
    console.print(profile.source)


@bench_app.command("sim")
def bench_sim_command(
    validate: Annotated[bool, typer.Option("--validate", help="Replay a real `pars bench serve` run and compare")] = False,
    study: Annotated[str, typer.Option(help="replay | bound (starvation rules) | quality (ranker tau) | scale (1M requests)")] = "replay",
    profile: Annotated[str, typer.Option(help="Shipped profile name (cpu-tiny-llama, h100-llama-3.1-8b) or a profile JSON path")] = "cpu-tiny-llama",
    policies: Annotated[str, typer.Option(help="Comma-separated: fcfs, pars, oracle, margin, listmle, pointwise, classify")] = "fcfs,pars,oracle",
    trace: Annotated[Optional[str], typer.Option(help="azure-conv | azure-code | mooncake-conv: the whole trace as recorded (or scaled to --loads)")] = None,
    loads: Annotated[Optional[str], typer.Option(help="Poisson (or trace) rates as fractions of FCFS capacity [default: 0.5,0.8,1,1.2,1.5; none with --trace]")] = None,
    burst: Annotated[int, typer.Option(min=0, help="Requests in the burst run (0: none)")] = 200,
    requests: Annotated[int, typer.Option(min=2, help="Requests per Poisson load")] = 2000,
    replicas: Annotated[int, typer.Option(min=1, help="Replicas behind the router's balancer")] = 1,
    balancer: Annotated[str, typer.Option(help="least-work | least-requests | round-robin | power-of-two (with --replicas > 1)")] = "least-work",
    max_num_seqs: Annotated[Optional[int], typer.Option(min=1, help="vLLM's running batch limit [default: the profile's engine]")] = None,
    kv_blocks: Annotated[Optional[int], typer.Option(min=1, help="KV cache blocks of 16 tokens [default: the profile's engine]")] = None,
    length_scale: Annotated[float, typer.Option(help="Output tokens = true length x this")] = 1.0,
    scale_requests: Annotated[int, typer.Option(min=1, help="Requests of the scale check")] = 1_000_000,
    predictor: PredictorOption = None,
    seed: Annotated[int, typer.Option(help="Seed of prompts and arrivals")] = 0,
    requests_file: Annotated[Path, typer.Option(help="--validate: requests.jsonl of the run (summary.json beside it)")] = Path("results/serving/requests.jsonl"),
    scoring_ms: Annotated[float, typer.Option(min=0.0, help="Front-end scoring per predicted request, ms (FIFO scorer)")] = 0.0,
    max_num_batched_tokens: Annotated[Optional[int], typer.Option(min=1, help="--validate: vLLM's token budget [default: the run's max_model_len]")] = None,
    out: Annotated[Path, typer.Option(help="Where the summary, tables and plots go")] = Path("results/sim"),
) -> None:
    """Simulate vLLM continuous batching (labelled simulated): policies across load or a whole trace, the
    starvation bound, ranker quality, scale; --validate replays a served run per policy and workload."""
    check_output_dir(out, "--out")
    if not validate:
        _run_sim_study(study, profile, policies, trace, loads, burst, requests, replicas, balancer, max_num_seqs,
                       kv_blocks, length_scale, scale_requests, predictor, seed, scoring_ms, out)
        return
    from pars.bench.sim_validation import TOLERANCE, validate as run_validation, write_validation
    from pars.sim import StepProfile

    try:
        step_profile = StepProfile.named(profile)
        result = run_validation(requests_file.parent / "summary.json", requests_file, step_profile, scoring_ms,
                                max_num_batched_tokens)
    except ValueError as err:  # ValidationError, bad profile
        fail(str(err))
    path = write_validation(result, out)
    mark = {True: "yes", False: "no"}
    print_rows(f"Simulated ({step_profile.name}) vs real end-to-end latency; within = |sim/real - 1| <= {TOLERANCE:.0%} ({path})",
               ["policy", "repeat", "workload", "real mean s", "sim mean s", "sim/real", "within", "real P90 s",
                "sim P90 s", "sim/real P90", "within P90"], 3,
               [[r["policy"], str(r["repeat"]), r["workload"], f"{r['real_mean_s']:.2f}", f"{r['sim_mean_s']:.2f}",
                 f"{r['mean_ratio']:.2f}", mark[r["mean_within"]], f"{r['real_p90_s']:.2f}", f"{r['sim_p90_s']:.2f}",
                 f"{r['p90_ratio']:.2f}", mark[r["p90_within"]]] for r in result["rows"]])
    for ranking in result["rankings"]:
        console.print(f"repeat {ranking['repeat']}, {ranking['workload']}: real {' < '.join(ranking['real_order'])}; "
                      f"sim {' < '.join(ranking['sim_order'])} -> {'agree' if ranking['agree'] else 'DISAGREE'}")
    if result["skipped_policies"]:
        console.print(f"not simulated: {', '.join(result['skipped_policies'])}")


def _run_sim_study(study: str, profile: str, policies: str, trace: str | None, loads: str | None, burst: int,
                   requests: int, replicas: int, balancer: str, max_num_seqs: int | None, kv_blocks: int | None,
                   length_scale: float, scale_requests: int, predictor: Path | None, seed: int, scoring_ms: float,
                   out: Path) -> None:
    from pars.bench.serving_report import SHORT_COLUMNS, table_cells
    from pars.bench.sim_runs import SimOptions, run_sim
    from pars.bench.sim_study import SimArrivals

    check_positive("--length-scale", length_scale)
    names = tuple(p.strip() for p in policies.split(",") if p.strip())
    if "fcfs" not in names:
        fail("--policies must include fcfs: every ratio is to FCFS on the same requests")
    default_loads = () if trace else (0.5, 0.8, 1.0, 1.2, 1.5)
    directory = predictor or (default_predictor_dir() if "pars" in names else None)  # its split picks the prompts
    if directory is not None:
        check_checkpoints([directory])
    try:
        plan = SimArrivals(requests, burst, parse_floats(loads) if loads else default_loads, trace, length_scale, seed)
        options = SimOptions(profile, study, names, plan, replicas, balancer, max_num_seqs, kv_blocks, scoring_ms,
                             directory, None, scale_requests)
        with console.status(f"simulating ({study})") as status:
            rows = run_sim(options, out, on_progress=lambda what: status.update(f"simulating: {what}"))
    except (ValueError, FileNotFoundError) as err:
        fail(str(err))
    if study == "replay":
        print_rows(f"SIMULATED ({profile}): {out / 'summary.md'}", [t for _, t, _ in SHORT_COLUMNS], 3,
                   [table_cells(r, SHORT_COLUMNS) for r in rows])
    else:
        keys = list(rows[0])
        print_rows(f"SIMULATED ({profile}), study {study}: {out / (study + '.md')}", keys, 2,
                   [[f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in keys] for r in rows])
