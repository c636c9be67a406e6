"""scripts/check_vllm_internals.py: every vLLM internal docs/vllm.md lists is in the installed vLLM, and a
release that builds a queue PARS would not rank is caught (that release is made here on purpose)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from pars.integrations.vllm.versions import installed_vllm

CHECK = Path(__file__).resolve().parents[2] / "scripts" / "check_vllm_internals.py"
SCHEDULER = "vllm/v1/core/sched/scheduler.py"


def run_check(*args: str, out: Path) -> tuple[int, dict, str]:
    done = subprocess.run([sys.executable, str(CHECK), *args, "--json", str(out)], capture_output=True, text=True,
                          timeout=300)
    return done.returncode, json.loads(out.read_text()) if out.exists() else {}, done.stdout + done.stderr


def test_every_internal_pars_depends_on_is_in_the_installed_vllm(tmp_path):
    status, report, output = run_check("--installed", out=tmp_path / "report.json")
    assert status == 0, output
    name, version = installed_vllm()
    assert [w["label"] for w in report["wheels"]] == [f"{name} {version}"]
    statuses = {r["status"] for check in report["checks"] for r in check["results"].values()}
    assert statuses <= {"OK", "MOVED"} and len(report["checks"]) >= 70, statuses


def test_a_release_with_a_queue_pars_does_not_rank_fails_the_check(tmp_path):
    root = Path(metadata.distribution(installed_vllm()[0]).locate_file(""))
    source = (root / SCHEDULER).read_text()
    anchor = "self.waiting = create_request_queue(self.policy)"
    assert anchor in source
    wheel = tmp_path / "vllm-9.9.9-py3-none-any.whl"  # a release made here: the installed one plus a queue
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(SCHEDULER, source.replace(
            anchor, f"{anchor}\n        self.surprise_waiting = create_request_queue(self.policy)", 1))
        archive.writestr("vllm-9.9.9.dist-info/METADATA", "Name: vllm\nVersion: 9.9.9\n")
    status, report, output = run_check("--wheel", str(wheel), out=tmp_path / "report.json")
    assert status == 1, output
    queues = next(c for c in report["checks"] if c["kind"] == "queues")["results"]["vllm 9.9.9"]
    assert queues["status"] == "CHANGED" and "surprise_waiting" in queues["detail"], queues


@pytest.mark.parametrize("argument", [["--wheel", "/nonexistent.whl"], []])
def test_a_missing_wheel_or_no_argument_is_one_line_and_a_non_zero_exit(tmp_path, argument):
    done = subprocess.run([sys.executable, str(CHECK), *argument], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.strip(), done.stderr
