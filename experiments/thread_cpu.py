"""Where the CPU goes during a benchmark: samples every thread of a process tree once a second.

Usage: python experiments/thread_cpu.py record PID OUT.jsonl   (stops when PID exits)
       python experiments/thread_cpu.py summarise OUT.jsonl    (per process: cores used, where its threads ran)
Each line: {"t": unix time, "pid", "ppid", "comm" (process), "tid", "thread" (name), "cpu_s" (utime+stime),
"allowed" (the CPUs the thread may run on), "last_cpu" (the CPU it last ran on)}.
Cumulative per thread, so the CPU a thread used in a window is the difference of two samples. Reads /proc only.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time
from pathlib import Path

from pars.bench.pinning import child_pids

TICK = os.sysconf("SC_CLK_TCK")


def _stat(path: Path) -> tuple[str, list[str]] | None:
    try:
        raw = path.read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1: raw.rindex(")")]
    return name, raw[raw.rindex(")") + 2:].split()


def _allowed(status: Path) -> str:
    try:
        lines = status.read_text().splitlines()
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Cpus_allowed_list")), "")


def sample(root: int) -> list[dict]:
    rows = []
    now = time.time()
    for pid in [root, *child_pids(root)]:
        proc = _stat(Path(f"/proc/{pid}/stat"))
        if proc is None:
            continue
        for task in Path(f"/proc/{pid}/task").glob("*"):
            stat = _stat(task / "stat")
            if stat is None:
                continue
            fields = stat[1]
            allowed = _allowed(task / "status")
            rows.append({"t": now, "pid": pid, "ppid": int(proc[1][1]), "comm": proc[0], "tid": int(task.name),
                         "thread": stat[0], "cpu_s": (int(fields[11]) + int(fields[12])) / TICK,
                         "allowed": allowed, "last_cpu": int(fields[36])})
    return rows


def record(root: int, out: Path) -> None:
    with out.open("w") as handle:
        while Path(f"/proc/{root}").exists():
            for row in sample(root):
                handle.write(json.dumps(row) + "\n")
            handle.flush()
            time.sleep(1.0)


def summarise(path: Path) -> str:
    """One line per process: its life, the cores it used on average, the CPUs it was allowed, and the share
    of its busy samples spent on each CPU (where its threads that used CPU since the last sample last ran)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by_process: dict[int, list[dict]] = collections.defaultdict(list)
    for row in rows:
        by_process[row["pid"]].append(row)
    lines = []
    for pid, own in sorted(by_process.items(), key=lambda item: item[1][0]["t"]):
        first, last, placed, previous = own[0]["t"], own[-1]["t"], collections.Counter(), {}
        for row in own:
            if row["cpu_s"] > previous.get(row["tid"], row["cpu_s"]):
                placed[row["last_cpu"]] += 1
            previous[row["tid"]] = row["cpu_s"]
        used = sum(previous.values())
        busy = sum(placed.values()) or 1
        where = ", ".join(f"CPU {cpu} {count / busy:.0%}" for cpu, count in sorted(placed.items()))
        allowed = "/".join(sorted({row["allowed"] for row in own}))
        lines.append(f"{own[-1]['comm']:<16} pid {pid:>6}: {last - first:5.0f} s, {used / max(last - first, 1.0):.2f} "
                     f"cores, allowed {allowed}; busy on {where}")
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1] == "record":
        record(int(sys.argv[2]), Path(sys.argv[3]))
    else:
        print(summarise(Path(sys.argv[2])))


if __name__ == "__main__":
    main()
