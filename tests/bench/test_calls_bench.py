"""The call benchmark as a user runs it, tiny: it starts and stops its own servers; no timing is asserted."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

from PIL import Image

RUN_TIMEOUT_S = 240
HEADLINE_KEYS = {
    "calls", "cpu_per_call_pct", "naive_cpu_per_call_pct", "ratio_naive_to_passthrough", "min_fps",
    "audio_delivered_pct", "screenshot_p95_ms", "setup_p95_ms", "rss_per_call_mb", "ratio_by_calls", "targets",
    "machine", "scenarios",
}


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench.calls", *args], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)


def explain(res: subprocess.CompletedProcess[str]) -> str:
    return f"exit {res.returncode}\n--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}"


def test_both_relays_deliver_media_store_screenshots_and_report_the_numbers(tmp_path: Path) -> None:
    out, chart, table = tmp_path / "calls.json", tmp_path / "calls.png", tmp_path / "calls.md"
    res = bench("--calls", "1", "--seconds", "3", "--relay", "both", "--size", "320x240", "--screenshot-every", "2",
                "--no-recording-overhead", "--json", str(out), "--chart", str(chart), "--markdown", str(table))
    assert res.returncode == 0, explain(res)
    report = json.loads(out.read_text())
    assert report.keys() >= HEADLINE_KEYS
    assert report["calls"] == 1
    for key in ("cpu_per_call_pct", "naive_cpu_per_call_pct", "ratio_naive_to_passthrough", "rss_per_call_mb",
                "screenshot_p95_ms", "setup_p95_ms"):
        assert isinstance(report[key], float), (key, report[key])
    assert report["min_fps"] > 0 and report["audio_delivered_pct"] > 0
    assert [(s["relay"], s["calls"], s["record"]) for s in report["scenarios"]] == [
        ("passthrough", 1, True), ("naive", 1, True)]
    for s in report["scenarios"]:
        assert s["failed_calls"] == 0 and s["errors"] == [], s
        assert s["calls_in_window"] == 1 and s["window_s"] > 0 and s["server_cpu_pct"] > 0, s
        [call] = s["per_call"]
        assert call["ok"] and call["fps"] > 0 and call["audio_delivered_pct"] > 0, call
        # floor((3 s window + 4 s of warm-up and set-up allowance) / 2 s) screenshots, every one filed.
        assert len(call["screenshots_ms"]) == 3 and s["screenshots_stored"] == 3, s
        assert call["recorded"] and s["recordings_stored"] == 1, s
    assert report["targets"][0]["name"].startswith("server CPU per recorded call")
    with Image.open(chart) as png:
        assert png.format == "PNG" and png.width > png.height
    text = table.read_text()
    assert "| passthrough | 1 |" in text and "| naive | 1 |" in text
    # Every server it started was stopped by its PID.
    pids = [int(p) for p in re.findall(r"stopped claimcam-\S+ \(pid (\d+)\)", res.stderr)]
    assert len(pids) == 2
    for pid in pids:
        assert not _alive(pid), pid


def test_bad_options_stop_before_any_server_starts() -> None:
    res = bench("--calls", "0", "--seconds", "3")
    assert res.returncode == 2, explain(res)
    assert "--calls must be" in res.stderr and "started" not in res.stderr


async def test_ctrl_c_mid_call_stops_the_server_and_still_reports() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.calls", "--calls", "1", "--seconds", "60", "--relay", "passthrough",
        "--size", "320x240", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    started: list[int] = []
    try:
        assert proc.stderr is not None
        async with asyncio.timeout(60):
            while "started claimcam-" not in (line := (await proc.stderr.readline()).decode()):
                assert line, "the benchmark stopped before starting its server"
        started.append(int(line.rsplit("pid ", 1)[1].rstrip(")\n")))
        await asyncio.sleep(3)  # the call is being set up or running
        proc.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 130, stderr.decode()
    assert "(interrupted" in stdout.decode()
    assert "interrupted; every server it started was stopped" in stderr.decode()
    assert f"stopped claimcam-passthrough-1 (pid {started[0]})" in stderr.decode()
    assert not _alive(started[0])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
