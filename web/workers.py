"""`claimcam serve --workers N`: N server processes sharing one port, so a host uses every core.

One process's event loop caps it at one core. The parent migrates the database once, then starts
N children (`claimcam serve --worker`), each a full node that listens with SO_REUSEPORT, so the
kernel spreads new connections over them. They are nodes like separate hosts would be: they share
the database, Redis (required) and the object store, and a call's media runs on one owner node
(signalling/media_router.py). Socket.IO accepts websocket only, because long-polling would need
every request of a session to reach the same process. The parent restarts a child that dies, and
on SIGTERM or Ctrl-C stops them all.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType

log = logging.getLogger(__name__)

MAX_WORKERS = 64
RESTARTS_PER_MINUTE = 5
STOP_WITHIN_S = 15.0


@dataclass
class Slot:
    index: int
    proc: subprocess.Popen[bytes]
    restarts: list[float] = field(default_factory=list)


def child_command(config: str | None, host: str, port: int, *, demo: bool = False) -> list[str]:
    mode = "demo" if demo else "serve"
    command = [sys.executable, "-m", "web.cli", mode, "--worker", "--host", host, "--port", str(port)]
    if config:
        command += ["--config", config]
    return command


def listening(host: str, port: int, within_s: float) -> bool:
    """Whether something accepts connections on host:port within `within_s`."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.1)
    return False


def supervise(
    command: Sequence[str], workers: int, *, address: tuple[str, int] | None = None, poll_s: float = 0.5
) -> int:
    """Run `workers` copies of `command` until SIGTERM/SIGINT; 0 on a requested stop, 1 on a crash loop.

    With `address`, the first worker is up before the others start, so start-up work (demo data)
    runs once and the rest find it done.
    """
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        log.info("stopping %d workers (signal %d)", workers, signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    slots = [Slot(0, subprocess.Popen(list(command)))]
    if address is not None and not listening(*address, within_s=60.0):
        log.warning("the first worker is not listening on %s:%d after 60 s; starting the others anyway", *address)
    slots += [Slot(i, subprocess.Popen(list(command))) for i in range(1, workers)]
    log.info("started %d workers: pids %s", workers, ", ".join(str(s.proc.pid) for s in slots))
    code = 0
    try:
        while not stopping:
            time.sleep(poll_s)
            for slot in slots:
                if stopping or slot.proc.poll() is None:
                    continue
                now = time.monotonic()
                slot.restarts = [t for t in slot.restarts if now - t < 60.0]
                if len(slot.restarts) >= RESTARTS_PER_MINUTE:
                    log.error("worker %d keeps exiting (last code %s); stopping", slot.index, slot.proc.returncode)
                    stopping, code = True, 1
                    break
                log.warning("worker %d (pid %d) exited with %s; restarting", slot.index, slot.proc.pid,
                            slot.proc.returncode)
                slot.restarts.append(now)
                slot.proc = subprocess.Popen(list(command))
    finally:
        _stop_all([s.proc for s in slots])
        for s, handler in previous.items():
            signal.signal(s, handler)
    return code


def _stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + STOP_WITHIN_S
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("worker pid %d did not stop in %.0f s; killing it", proc.pid, STOP_WITHIN_S)
            proc.kill()
            proc.wait()
