#!/usr/bin/env bash
# The load-curve run of issue 24 with the default student (72,958 prompts), alone on the 2-core VM: pinned first
# (vLLM's model worker alone on the CPU vLLM bound it to, engine core and front end on the other), then
# unpinned; 3 repeats each. Load average before, between and after in loadavg.txt.
set -euo pipefail
OUT=results/serving/load_curve_2026-12-06
COMMON="--burst 100 --extra-bursts 40 --loads 0.3,0.5,0.8,0.95,1.3
        --requests 150 --length-scale 0.5 --predictor artifacts/predictor --repeats 3"
uptime > $OUT/loadavg.txt
.venv/bin/pars bench serve --policies fcfs,pars,pars-teacher,oracle,pars-ahead $COMMON --pin --out $OUT/pinned
uptime >> $OUT/loadavg.txt
.venv/bin/pars bench serve --policies fcfs,pars,pars-teacher,oracle $COMMON --out $OUT/unpinned
uptime >> $OUT/loadavg.txt
