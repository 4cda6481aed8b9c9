"""What a process tree and the machine used, from /proc (Linux): CPU time, resident memory, the CPU model.

CPU time counts every thread of a process (utime + stime of /proc/<pid>/stat); the event-loop thread
alone is /proc/<pid>/task/<pid>/stat. A server may be one process or a supervisor with worker
children (`claimcam serve --workers N`), so readings cover a list of processes and keep each one's
figures beside their sum. A percentage "of one core" is CPU seconds per wall second x 100, so
processes using both cores of a 2-core machine show 200 %.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
KIB = 1024


def _stat_fields(path: Path) -> list[str]:
    """The fields after the command name, which may hold spaces and parentheses: field 3 of proc(5) first."""
    text = path.read_text()
    return text[text.rindex(")") + 2 :].split()


def _stat_cpu_s(path: Path) -> float:
    fields = _stat_fields(path)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14 and 15 of proc(5)


def process_cpu_s(pid: int) -> float:
    return _stat_cpu_s(Path(f"/proc/{pid}/stat"))


def main_thread_cpu_s(pid: int) -> float:
    """The thread whose id is the process id: the one running asyncio's event loop in claimcam."""
    return _stat_cpu_s(Path(f"/proc/{pid}/task/{pid}/stat"))


def start_ticks(pid: int) -> int | None:
    """When the process started (field 22 of proc(5)); with the PID it names one process, even after PID reuse."""
    try:
        return int(_stat_fields(Path(f"/proc/{pid}/stat"))[19])
    except (OSError, ValueError, IndexError):
        return None


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * KIB  # "VmRSS:   123456 kB"
    return 0


def rss_bytes(pids: Sequence[int]) -> int:
    """Resident memory of these processes together; one that has exited counts nothing."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += _rss(pid)
    return total


def _children_by_parent() -> dict[int, list[int]]:
    """Every process's children, from the parent PID in each /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            parent = int(_stat_fields(Path(entry.path, "stat"))[1])
        except (OSError, ValueError, IndexError):
            continue  # gone between the listing and the read
        children.setdefault(parent, []).append(int(entry.name))
    return children


def children(pid: int) -> list[int]:
    return sorted(_children_by_parent().get(pid, ()))


def process_tree(root: int) -> list[int]:
    """`root` and every process descended from it, parents before their children."""
    by_parent = _children_by_parent()
    found, queue = [], [root]
    while queue:
        pid = queue.pop(0)
        found.append(pid)
        queue += sorted(by_parent.get(pid, ()))
    return found


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from the first line of /proc/stat."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


@dataclass(frozen=True, slots=True)
class Process:
    pid: int
    cpu_s: float
    main_thread_cpu_s: float
    rss: int


def read_process(pid: int) -> Process | None:
    """None when the process has exited."""
    try:
        return Process(pid, process_cpu_s(pid), main_thread_cpu_s(pid), _rss(pid))
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of some processes and of the machine, with this process's own CPU time."""

    at: float  # time.monotonic()
    processes: tuple[Process, ...]
    machine_busy: int
    machine_total: int
    own_cpu_s: float

    @property
    def rss(self) -> int:
        return sum(p.rss for p in self.processes)


def sample(pids: Sequence[int]) -> Sample:
    busy, total = machine_ticks()
    found = tuple(p for p in map(read_process, pids) if p is not None)
    return Sample(time.monotonic(), found, busy, total, time.process_time())


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """One process between two samples, in % of one core."""

    pid: int
    cpu_pct: float
    main_thread_pct: float


@dataclass(frozen=True, slots=True)
class Usage:
    """What happened between two samples; percentages of one core, the machine's of all its cores."""

    seconds: float
    cpu_pct: float  # every process read at both ends, together
    processes: tuple[ProcessUsage, ...]  # in the order they were asked for
    machine_busy_pct: float
    own_cpu_pct: float

    @classmethod
    def between(cls, a: Sample, b: Sample) -> Usage:
        wall = max(b.at - a.at, 1e-9)
        ticks = max(b.machine_total - a.machine_total, 1)
        before = {p.pid: p for p in a.processes}
        # A process that exited in between has no end reading; its share is lost, not guessed.
        each = tuple(
            ProcessUsage(p.pid, 100 * (p.cpu_s - before[p.pid].cpu_s) / wall,
                         100 * (p.main_thread_cpu_s - before[p.pid].main_thread_cpu_s) / wall)
            for p in b.processes if p.pid in before
        )
        return cls(
            seconds=wall,
            cpu_pct=sum(p.cpu_pct for p in each),
            processes=each,
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
