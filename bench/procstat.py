"""What a process and the machine used, from /proc (Linux): CPU time, resident memory, the CPU model.

CPU time counts every thread of a process (utime + stime of /proc/<pid>/stat); the event-loop thread
alone is /proc/<pid>/task/<pid>/stat. A percentage "of one core" is CPU seconds per wall second x 100,
so a process using both cores of a 2-core machine shows 200 %.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
KIB = 1024


def _stat_cpu_s(path: Path) -> float:
    text = path.read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14 and 15 of proc(5)


def process_cpu_s(pid: int) -> float:
    return _stat_cpu_s(Path(f"/proc/{pid}/stat"))


def main_thread_cpu_s(pid: int) -> float:
    """The thread whose id is the process id: the one running asyncio's event loop in claimcam."""
    return _stat_cpu_s(Path(f"/proc/{pid}/task/{pid}/stat"))


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * KIB  # "VmRSS:   123456 kB"
    return 0


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from the first line of /proc/stat."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of a process and of the machine, with this process's own CPU time."""

    at: float  # time.monotonic()
    cpu_s: float
    main_thread_cpu_s: float
    rss: int
    machine_busy: int
    machine_total: int
    own_cpu_s: float


def sample(pid: int) -> Sample:
    busy, total = machine_ticks()
    return Sample(time.monotonic(), process_cpu_s(pid), main_thread_cpu_s(pid), rss_bytes(pid), busy, total,
                  time.process_time())


@dataclass(frozen=True, slots=True)
class Usage:
    """What happened between two samples; percentages of one core, the machine's of all its cores."""

    seconds: float
    cpu_pct: float
    main_thread_pct: float
    machine_busy_pct: float
    own_cpu_pct: float

    @classmethod
    def between(cls, a: Sample, b: Sample) -> Usage:
        wall = max(b.at - a.at, 1e-9)
        ticks = max(b.machine_total - a.machine_total, 1)
        return cls(
            seconds=wall,
            cpu_pct=100 * (b.cpu_s - a.cpu_s) / wall,
            main_thread_pct=100 * (b.main_thread_cpu_s - a.main_thread_cpu_s) / wall,
            machine_busy_pct=100 * (b.machine_busy - a.machine_busy) / ticks,
            own_cpu_pct=100 * (b.own_cpu_s - a.own_cpu_s) / wall,
        )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def cores() -> int:
    """CPUs this process may run on (what `nproc` prints)."""
    return len(os.sched_getaffinity(0))


def load_average_1m() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])
