"""Child server processes of the tests: wait until they answer, stop them by their own PID."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

STOP_TIMEOUT_S = 10.0


def wait_until_ready(
    proc: subprocess.Popen[Any],
    answers: Callable[[], bool],
    what: str,
    timeout_s: float,
    detail: Callable[[], str] = lambda: "",
    step_s: float = 0.02,
) -> None:
    """Poll `answers` until it is true; fail at once if the process exits, or after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited during start-up {detail()}")
        if answers():
            return
        time.sleep(step_s)
    raise RuntimeError(f"{what} did not answer within {timeout_s} s {detail()}")


def stop(proc: subprocess.Popen[Any], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Terminate by PID; SIGKILL when it does not exit in time. Safe on a process already gone."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout_s)
