#!/usr/bin/env bash
# The load-curve run of issue 24 (results/serving/load_curve_2026-12-04): alone on the 2-core VM, unpinned
# (3 repeats) then pinned (engine core on CPU 1, front end on CPU 0; 1 repeat). Length scale 0.5.
set -euo pipefail
OUT=results/serving/load_curve_2026-12-04
COMMON="--burst 100 --extra-bursts 40 --loads 0.3,0.5,0.8,0.95,1.3
        --requests 150 --length-scale 0.5 --predictor artifacts/predictor"
uptime > $OUT/loadavg.txt
.venv/bin/pars bench serve --policies fcfs,pars,pars-teacher,oracle,pars-ahead $COMMON --repeats 3 --out $OUT/unpinned
uptime >> $OUT/loadavg.txt
.venv/bin/pars bench serve --policies fcfs,pars,pars-teacher,oracle $COMMON --repeats 1 --pin --out $OUT/pinned
uptime >> $OUT/loadavg.txt
