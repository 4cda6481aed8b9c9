"""The call benchmark as a user runs it, tiny: it starts and stops its own servers; no timing is asserted."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from bench.calls import CallsOptions, CallsReport, Scenario, format_markdown
from bench.loadtest import LoadTestError

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
    res = bench("--calls", "1", "--seconds", "1", "--warmup", "0.5", "--relay", "both", "--size", "320x240",
                "--screenshot-every", "1",
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
        # floor((1 s window + 0.5 s of warm-up + 1 s of allowance for one call) / 1 s) screenshots, every one filed.
        assert len(call["screenshots_ms"]) == 2 and s["screenshots_stored"] == 2, s
        assert call["recorded"] and s["recordings_stored"] == 1, s
    assert report["targets"][0]["name"].startswith("server CPU per recorded call")
    with Image.open(chart) as png:
        assert png.format == "PNG" and png.width > png.height
    text = table.read_text()
    assert "| passthrough | 1 | 1 | 1 |" in text and "| naive | 1 | 1 | 1 |" in text
    # Every server it started was stopped by its PID.
    pids = [int(p) for p in re.findall(r"stopped claimcam-\S+ \(pid (\d+)\)", res.stderr)]
    assert len(pids) == 2
    for pid in pids:
        assert not _alive(pid), pid


def test_two_workers_share_the_calls_and_the_cpu_of_every_worker_is_counted(tmp_path: Path) -> None:
    out, table = tmp_path / "calls.json", tmp_path / "calls.md"
    res = bench("--workers", "2", "--calls", "2", "--seconds", "1", "--warmup", "0.5", "--relay", "passthrough",
                "--size", "320x240", "--screenshot-every", "0", "--no-record", "--json", str(out),
                "--markdown", str(table))
    assert res.returncode == 0, explain(res)
    report = json.loads(out.read_text())
    assert report["workers"] == 2 and report["options"]["workers"] == [2]
    [s] = report["scenarios"]
    assert s["workers"] == 2 and s["failed_calls"] == 0 and s["errors"] == [], s
    assert s["calls_in_window"] == 2 and all(c["ok"] and c["fps"] > 0 for c in s["per_call"]), s["per_call"]
    supervisor, *workers = s["server_pids"]
    assert workers == s["worker_pids"] and len(workers) == 2, s
    assert len(s["worker_cpu_pct"]) == len(s["worker_loop_pct"]) == 2, s
    # The whole tree is counted: the supervisor (which only waits) and both workers, whose loops are reported.
    assert s["server_cpu_pct"] > s["supervisor_cpu_pct"], s
    assert abs(s["server_cpu_pct"] - s["supervisor_cpu_pct"] - sum(s["worker_cpu_pct"])) < 1e-6, s
    assert s["main_thread_pct"] == max(s["worker_loop_pct"])
    # Every call's media owner was found in Redis, on one of the two workers.
    assert sum(s["calls_per_worker"]) == 2 and len(s["calls_per_worker"]) == 2, s
    assert report["scale_out"]["workers"] == [2]
    assert "| passthrough (no recording) | 2 | 2 |" in table.read_text()
    assert f"supervisor pid {supervisor}, workers {workers[0]}, {workers[1]}" in res.stderr
    assert "stopped redis-server" in res.stderr
    for pid in s["server_pids"]:
        assert not _alive(pid), pid


def _scenario(calls: int, workers: int, min_fps: float) -> Scenario:
    spread = [calls - calls // workers * (workers - 1), *[calls // workers] * (workers - 1)]
    return Scenario("passthrough", calls, True, workers, calls_in_window=calls, min_fps=min_fps,
                    audio_delivered_pct=100.0, cpu_per_call_pct=7.0, main_thread_pct=5.0 * calls / workers,
                    generator_cpu_per_call_pct=6.0, calls_per_worker=spread)


def _scale_out_report(cores: int) -> CallsReport:
    options = CallsOptions(calls=(2, 4, 6), workers=(1, 2), relays=("passthrough",), recording_overhead=False)
    # One worker keeps up to 4 calls and drops frames at 6; two workers keep up at every count tried.
    scenarios = [_scenario(2, 1, 30.0), _scenario(4, 1, 29.5), _scenario(6, 1, 21.0),
                 _scenario(2, 2, 30.0), _scenario(4, 2, 30.0), _scenario(6, 2, 29.9)]
    return CallsReport(options, scenarios, machine={"nproc": cores, "cpu_model": "test", "loadavg_1m_at_start": 0.0})


def test_capacity_is_the_most_calls_every_call_kept_its_quality_and_workers_are_compared() -> None:
    report = _scale_out_report(cores=8)
    scale = report.as_json()["scale_out"]
    assert scale["capacity"] == {"1": {"calls": 4, "calls_per_worker": 4.0, "at_least": False},
                                 "2": {"calls": 6, "calls_per_worker": 3.0, "at_least": True}}
    # Two workers kept up at the most calls tried, so their capacity (and the ratio) is a floor.
    assert scale["capacity_ratio"] == 1.5 and scale["capacity_ratio_at_least"] is True and scale["caveat"] is None
    assert scale["by_calls"][2]["by_workers"]["1"]["quality_met"] is False
    assert scale["by_calls"][2]["by_workers"]["2"]["calls_per_worker"] == [3, 3]
    text = format_markdown(report)
    assert "| passthrough | 6 | 2 | 3 + 3 |" in text
    assert "- 6 call(s): 1 worker 21.0 fps" in text and "2 workers 29.9 fps" in text
    assert "2 workers carry >= 1.50x the calls of 1 worker (target >= 1.8x)" in text


def test_on_a_machine_under_four_cores_no_scale_out_ratio_is_claimed() -> None:
    report = _scale_out_report(cores=2)
    scale = report.as_json()["scale_out"]
    assert scale["capacity"]["1"]["calls"] == 4 and scale["capacity_ratio"] is None
    assert "2 core(s)" in scale["caveat"] and "load generator (6.0 % per call" in scale["caveat"]
    text = format_markdown(report)
    assert "No scale-out ratio is claimed: this machine has 2 core(s)" in text and "x the calls of" not in text


def test_workers_out_of_bounds_are_refused_before_anything_starts() -> None:
    for workers in ((0,), (1, 65), ()):
        with pytest.raises(LoadTestError, match="--workers must be"):
            CallsOptions(workers=workers).check()


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
        await asyncio.sleep(2)  # the call is being set up or running
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
