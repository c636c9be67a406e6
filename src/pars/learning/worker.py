"""The refit worker: one process beside the API server, at the lowest OS priority (SCHED_IDLE, nice 19), that
runs refits (pars.learning.refit_job) one at a time on request.

Started with the server, so that its imports (torch, the student: seconds of CPU) are paid once and before
traffic comes. Each line the server writes to its stdin (a JSON object, `inject_fault` null or a fault's name)
asks for one refit, answered by one JSON line on stdout (the refit's report, or `{"error": ...}` for one that
cannot be done). Its own process because a refit may crash or hang: the server then kills it, keeps serving,
and starts a fresh worker for the next refit; EOF on stdin (the server went away) ends it. The server's side,
`RefitWorker`, blocks: the learner calls `ask` on a thread, never on the event loop.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path


class WorkerDied(RuntimeError):
    """The worker exited before it answered (a crash)."""


class RefitWorker:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.process = self._start()

    def _start(self) -> subprocess.Popen:
        """A fresh worker; it lowers its own OS priority before it imports anything."""
        return subprocess.Popen([sys.executable, "-m", "pars.learning.worker", str(self.root)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})

    def ask(self, fault: str | None, timeout_s: float) -> dict:
        """One refit's report (a worker that died since the last refit is started again first). Raises
        `TimeoutError` (the worker is killed) or `WorkerDied`."""
        if self.process.poll() is not None:
            self.process = self._start()
        try:
            self.process.stdin.write(json.dumps({"inject_fault": fault}).encode() + b"\n")
            self.process.stdin.flush()
        except OSError:  # a broken pipe: it died while idle
            raise self._died() from None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        if not ready:
            self.process.kill()
            self.process.wait()
            raise TimeoutError(f"no answer in {timeout_s:.0f} s, killed")
        answer = self.process.stdout.readline()  # the worker writes exactly one line per request
        if not answer:
            raise self._died()
        return json.loads(answer)

    def _died(self) -> WorkerDied:
        return WorkerDied(f"the refit worker exited with {self.process.wait()}")


def lowest_priority() -> None:
    """Only CPU time nothing else wants: Linux SCHED_IDLE where allowed, nice 19 too."""
    if hasattr(os, "sched_setscheduler"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            pass
    os.nice(19)


def main() -> None:
    """The worker's side: `python -m pars.learning.worker DIR`."""
    lowest_priority()  # before the imports, which are most of a worker's start
    import torch

    from pars.learning.refit import RefitError, RefitSettings
    from pars.learning.refit_job import FAULTS, refit
    from pars.learning.state import LearnDir

    torch.set_num_threads(1)
    learn = LearnDir(Path(sys.argv[1]))
    for line in sys.stdin:
        fault = json.loads(line).get("inject_fault")
        if fault not in (None, *FAULTS):
            report: dict = {"error": f"unknown fault {fault!r}"}
        else:
            try:
                report = refit(learn, RefitSettings(), fault)
            except RefitError as err:
                report = {"error": str(err)}
        print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
