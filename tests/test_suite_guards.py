"""The suite itself: a declared dependency that cannot import fails the run instead of skipping tests."""

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_the_engine_tests_fail_to_collect_when_vllm_cannot_import(tmp_path):
    broken = tmp_path / "vllm"
    broken.mkdir()
    # An injected fault: a `vllm` package that shadows the real one and fails to import.
    (broken / "__init__.py").write_text("raise ImportError('injected: vllm is broken')\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", str(TESTS / "integrations")],
                         capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
                         timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode != 0, output[-2000:]
    assert "ImportError while loading conftest" in output and "injected: vllm is broken" in output
