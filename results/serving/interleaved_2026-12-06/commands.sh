#!/usr/bin/env bash
# Issue 24, after the harness change (949b0ff): every policy's engine up at once, each workload run on each
# engine in turn. Pinned (model worker alone on vLLM's CPU), 3 repeats, alone on the 2-core VM; shortened
# curve (bursts 100 and 40, Poisson 0.5 and 0.95) to fit the session. Load average in loadavg.txt.
set -euo pipefail
OUT=results/serving/interleaved_2026-12-06
uptime > $OUT/loadavg.txt
.venv/bin/pars bench serve --policies fcfs,pars,oracle --burst 100 --extra-bursts 40 --loads 0.5,0.95 \
    --requests 150 --length-scale 0.5 --predictor artifacts/predictor --repeats 3 --pin --out $OUT/pinned
uptime >> $OUT/loadavg.txt
