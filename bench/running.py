"""How every `claimcam` benchmark command ends: one exit-code convention, one set of messages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TextIO, TypeVar

R = TypeVar("R")

EXIT_OK, EXIT_FAILED, EXIT_CANNOT_START, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


def run_command(
    prog: str,
    start: Callable[[], Coroutine[Any, Any, R]],
    verdict: Callable[[R], str | None],
    cannot_start: tuple[type[Exception], ...],
    cleaned_up: str = "every server it started was stopped",
) -> int:
    """Run `start()` to its report; `verdict(report)` says what failed (None: all good).

    0 all good, 1 something failed, 2 it could not start (one of `cannot_start`, its message
    printed), 130 on Ctrl-C and 143 on SIGTERM, each after the run cleaned up after itself.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = asyncio.run(start())
    except cannot_start as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return EXIT_CANNOT_START
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {cleaned_up}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except asyncio.CancelledError:
        print(f"{prog}: terminated; {cleaned_up}", file=sys.stderr)
        return EXIT_TERMINATED
    failed = verdict(report)
    if failed:
        print(f"{prog}: {failed}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def stop_on_sigterm(task: asyncio.Task[Any] | None) -> None:
    """SIGTERM (`timeout`, a CI runner) stops the run like Ctrl-C: cancelled, cleaned up, reported."""
    if task is None:
        return
    with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals off the main thread / on Windows
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


def forget_sigterm() -> None:
    """Undo `stop_on_sigterm` once the run has cleaned up."""
    with contextlib.suppress(NotImplementedError, RuntimeError):
        asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)


def write_json(prog: str, where: str | None, data: Any, err: TextIO) -> None:
    """Write a report's JSON if asked; an unwritable path is said, not raised (the run's table still prints)."""
    if not where:
        return
    path = Path(where)
    try:
        path.write_text(json.dumps(data, indent=2) + "\n")
    except OSError as e:
        print(f"{prog}: cannot write the JSON to {path}: {e}", file=err, flush=True)
    else:
        print(f"JSON written to {path}", file=err, flush=True)
