"""The console script as a user runs it: a real process on a free port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rooms.migrations import MIGRATIONS
from tests.support.ports import free_port

CLAIMCAM = str(Path(sys.executable).with_name("claimcam"))


@contextmanager
def running(args: list[str], tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    port = free_port()
    env = {**os.environ, "CLAIMCAM_DATA_DIR": str(tmp_path / "var"), "CLAIMCAM_PORT": str(port)}
    proc = subprocess.Popen([CLAIMCAM, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.05)
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        if proc.stdout is not None and not proc.stdout.closed:
            proc.communicate(timeout=10)  # also closes the pipe


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def test_serve_starts_on_the_given_port_with_sqlite_defaults(tmp_path: Path) -> None:
    with running(["serve"], tmp_path) as (port, _):
        assert get_json(f"http://127.0.0.1:{port}/healthz") == {"status": "ok"}
    assert (tmp_path / "var" / "claimcam.db").exists()


def test_demo_prints_urls_and_serves_demo_users(tmp_path: Path) -> None:
    with running(["demo"], tmp_path) as (port, proc):
        demo = get_json(f"http://127.0.0.1:{port}/dev/demo")
        assert isinstance(demo, dict)
        assert {u["access"] for u in demo["users"]} == {"full", "read"}
        assert all(u["token"].count(".") == 2 for u in demo["users"])
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert f"http://127.0.0.1:{port}/cases/demo-case/calls" in out
    assert "Vera Viewer (viewer, read access)" in out


def test_bad_setting_exits_with_a_message(tmp_path: Path) -> None:
    env = {**os.environ, "CLAIMCAM_PORT": "nope", "CLAIMCAM_DATA_DIR": str(tmp_path)}
    res = subprocess.run([CLAIMCAM, "serve"], env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "CLAIMCAM_PORT" not in res.stdout and "port" in res.stderr


def test_migrate_command_is_idempotent(tmp_path: Path) -> None:
    env = {**os.environ, "CLAIMCAM_DATA_DIR": str(tmp_path)}
    first = subprocess.run([CLAIMCAM, "migrate"], env=env, capture_output=True, text=True, timeout=30)
    second = subprocess.run([CLAIMCAM, "migrate"], env=env, capture_output=True, text=True, timeout=30)
    assert str([m.version for m in MIGRATIONS]) in first.stdout and "up to date" in second.stdout
