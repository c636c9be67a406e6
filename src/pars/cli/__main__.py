"""`python -m pars.cli ...`, as the benchmarks start `pars serve` and `pars score-server` in a child process."""

from pars.cli import app

app()
