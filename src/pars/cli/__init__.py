"""The `pars` command, one module per command group (train/eval/score, serving, benchmarks); the argument
checks live in `pars.cli.checks`, what they share in `pars.cli.common`."""

from pars.cli import train, serve, bench  # noqa: F401, I001 - importing a group registers its commands, in this order
from pars.cli.common import app

__all__ = ["app"]
