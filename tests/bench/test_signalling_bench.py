"""`claimcam bench signalling` as a user runs it, tiny: it starts and stops its own servers; no timing is asserted."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bench import signalling as sb
from bench import wsrelay
from tests.support.binaries import find_binary

CLAIMCAM = str(Path(sys.executable).with_name("claimcam"))
RUN_TIMEOUT_S = 180
SCENARIO_KEYS = {
    "cursor_p50_ms", "cursor_p99_ms", "cursor_max_ms", "cursor_worst_call_p99_ms", "cursor_sent",
    "cursor_delivered", "cursor_lost", "cursor_dropped", "chat_p50_ms", "chat_p99_ms", "chat_max_ms", "chat_sent",
    "chat_delivered", "chat_lost", "chat_dropped", "msgs_per_s", "server_cpu_percent",
    "server_processes_cpu_percent", "generator_cpu_percent", "generator_lag_p99_ms", "lost", "errors",
}


@pytest.fixture(scope="module")
def redis_installed() -> None:
    find_binary("redis-server")


def bench_args(*extra: str) -> list[str]:
    return [CLAIMCAM, "bench", "signalling", *extra]


def explain(res: subprocess.CompletedProcess[str]) -> str:
    return f"exit {res.returncode}\n--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}"


def test_all_three_scenarios_deliver_every_message_and_report_the_numbers(
    redis_installed: None, tmp_path: Path
) -> None:
    out = tmp_path / "signalling.json"
    res = subprocess.run(bench_args("--calls", "2", "--seconds", "1", "--json", str(out)),
                         capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert res.returncode == 0, explain(res)
    report = json.loads(out.read_text())
    assert (report["calls"], report["seconds"], report["ok"], report["interrupted"]) == (2, 1, True, False)
    assert list(report["scenarios"]) == ["one_node", "two_nodes", "raw_ws"]
    for name, s in report["scenarios"].items():
        assert s.keys() >= SCENARIO_KEYS, name
        assert s["errors"] == [] and s["lost"] == 0, (name, s)
        for kind in ("cursor", "chat"):
            assert s[f"{kind}_delivered"] > 0 and s[f"{kind}_lost"] == 0 and s[f"{kind}_unexpected"] == 0, (name, s)
            assert s[f"{kind}_sent"] == s[f"{kind}_delivered"] + s[f"{kind}_dropped"], (name, kind, s)
            assert s[f"{kind}_p50_ms"] is not None and s[f"{kind}_p99_ms"] is not None
        assert s["server_cpu_percent"] is not None and s["msgs_per_s"] > 0
    assert set(report["scenarios"]["two_nodes"]["server_processes_cpu_percent"]) == {"node 1", "node 2",
                                                                                     "redis-server"}
    # The relay has no rate limits: everything sent arrives.
    assert report["scenarios"]["raw_ws"]["cursor_dropped"] == report["scenarios"]["raw_ws"]["chat_dropped"] == 0
    assert isinstance(report["ratio_to_raw_ws"], float) and isinstance(report["redis_added_p99_ms"], float)
    assert {"cursor_met", "redis_added_met"} <= report["targets"].keys()
    assert "| scenario | cursor p50 ms | cursor p99 ms |" in res.stdout
    assert "socket.io 1 node cursor p99 / raw websocket p99:" in res.stdout
    assert "stopped node 2" in res.stderr and "stopped redis-server" in res.stderr


async def test_ctrl_c_stops_every_server_it_started(redis_installed: None) -> None:
    proc = await asyncio.create_subprocess_exec(
        *bench_args("--calls", "1", "--seconds", "60", "--scenarios", "two_nodes"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    started: list[int] = []
    try:
        assert proc.stderr is not None
        async with asyncio.timeout(60):
            while not (line := (await proc.stderr.readline()).decode()).endswith("measuring 60 s\n"):
                assert line, "the benchmark stopped before measuring"
                if "started " in line:
                    started.append(int(line.rsplit("pid ", 1)[1].rstrip(")\n")))
        assert len(started) == 3  # redis-server and two nodes
        proc.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 130, stderr.decode()
    assert "(interrupted)" in stdout.decode()
    assert "interrupted; every server it started was stopped" in stderr.decode()
    # The benchmark reaps each server it stops before it exits: none may be left, not even as a zombie.
    assert not [pid for pid in started if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_out_of_bounds_options_stop_before_anything_starts() -> None:
    res = subprocess.run(bench_args("--calls", "101"), capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "--calls must be 1..100" in res.stderr and res.stdout == "", explain(res)


# The command's way out for a bad option is shown above, once; the other bounds are checked where they live.
@pytest.mark.parametrize("options, message", [
    (sb.BenchOptions(calls=1, seconds=601), "--seconds must be 1..600"),
    (sb.BenchOptions(calls=1, seconds=1, scenarios=("one_node", "three_nodes")), "--scenarios takes"),
])
def test_each_bound_of_the_options_is_refused(options: sb.BenchOptions, message: str) -> None:
    with pytest.raises(sb.BenchError, match=message):
        options.check()


async def test_the_raw_relay_forwards_each_text_message_to_the_other_member_of_its_room_only() -> None:
    async with TestServer(wsrelay.create_app()) as server, aiohttp.ClientSession() as http:
        a, b, elsewhere = [await http.ws_connect(server.make_url(f"/ws/{room}")) for room in ("r1", "r1", "r2")]
        await a.send_str('{"x": 0.25}')
        assert await b.receive_str(timeout=5) == '{"x": 0.25}'
        await b.send_str("back")
        assert await a.receive_str(timeout=5) == "back"
        with pytest.raises(TimeoutError):
            await elsewhere.receive_str(timeout=0.2)
        for ws in (a, b, elsewhere):
            await ws.close()


def test_a_message_is_lost_only_when_the_server_accepted_it_and_it_never_arrived() -> None:
    tally = sb.Tally()
    for key, counted in ((0.0, False), (0.1, True), (0.2, True), (0.3, True), (0.4, True)):
        tally.sending(key, counted)
    tally.arrived(0.0, time.perf_counter())  # warm-up: arrives, not counted
    tally.arrived(0.1, time.perf_counter())
    tally.refused(0.2, "throttled")
    tally.arrived(0.9, time.perf_counter())  # never sent
    assert (tally.sent, tally.delivered, tally.dropped, tally.lost, tally.unexpected) == (4, 1, {"throttled": 1}, 2, 1)
    assert len(tally.latencies_s) == 1
