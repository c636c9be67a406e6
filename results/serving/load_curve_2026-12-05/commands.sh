#!/usr/bin/env bash
# The load-curve run of issue 24 with the default student (72,958 prompts): alone on the 2-core VM, unpinned then
# pinned (engine core on CPU 1, front end on CPU 0), 3 repeats each; then vLLM's own client (results/serving/independent).
set -euo pipefail
OUT=results/serving/load_curve_2026-12-05
COMMON="--burst 100 --extra-bursts 40 --loads 0.3,0.5,0.8,0.95,1.3
        --requests 150 --length-scale 0.5 --predictor artifacts/predictor --repeats 3"
uptime > $OUT/loadavg.txt
.venv/bin/pars bench serve --policies fcfs,pars,pars-teacher,oracle,pars-ahead $COMMON --out $OUT/unpinned
uptime >> $OUT/loadavg.txt
.venv/bin/pars bench serve --policies fcfs,pars,pars-teacher,oracle $COMMON --pin --out $OUT/pinned
uptime >> $OUT/loadavg.txt
.venv/bin/python experiments/vllm_bench_client.py --num-prompts 200 --rates inf,9 --policies fcfs,pars,vllm \
    --out results/serving/independent
uptime >> $OUT/loadavg.txt
