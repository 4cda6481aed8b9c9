"""`claimcam loadtest` as a user runs it: a real `claimcam demo` process, the load test as another process; of the
refusals before any call, one goes through the command and the others run in this process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest

from bench import loadtest
from bench.loadtest import LoadOptions, LoadTestError
from tests.conftest import MakeApi
from tests.support.ports import free_port

CLAIMCAM = str(Path(sys.executable).with_name("claimcam"))
RUN_TIMEOUT_S = 120
# The camera is encoded once when a run starts; the default 640x480 takes longer than any assertion needs.
SMALL = "320x240"


@dataclass(frozen=True)
class Server:
    url: str
    token: str  # Ines Inspector: full access to demo-case
    log: Path

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=5) as r:
            return json.load(r)

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])


@contextmanager
def claimcam_server(command: str, tmp: Path) -> Iterator[Server]:
    """`claimcam demo|serve` on a free loopback port, ICE on 127.0.0.1, its log in a file (never a full pipe)."""
    port = free_port()
    env = {**os.environ, "CLAIMCAM_DATA_DIR": str(tmp / "var"), "CLAIMCAM_PORT": str(port),
           "CLAIMCAM_ICE_HOST_ADDRESSES": "127.0.0.1", "CLAIMCAM_SECRET": "loadtest-secret"}
    log = tmp / f"{command}.log"
    with log.open("w") as out:
        proc = subprocess.Popen([CLAIMCAM, command], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the server did not become ready"
                time.sleep(0.05)
        token = ""
        if command == "demo":
            with urllib.request.urlopen(f"{url}/dev/demo", timeout=5) as r:
                token = next(u["token"] for u in json.load(r)["users"] if u["id"] == "u-inspector")
        yield Server(url, token, log)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with claimcam_server("demo", tmp_path_factory.mktemp("demo")) as server:
        yield server


def loadtest_args(url: str, token: str, *extra: str) -> list[str]:
    return [CLAIMCAM, "loadtest", "--url", url, "--token", token, "--case", "demo-case",
            "--ice-host-addresses", "127.0.0.1", *extra]


def run_loadtest(args: list[str], timeout_s: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout_s)


def explain(res: subprocess.CompletedProcess[str], server: Server | None = None) -> str:
    text = f"exit {res.returncode}\n--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}"
    return text + (f"\n--- server log\n{server.log_tail()}" if server else "")


def test_concurrent_calls_are_run_measured_and_cleaned_up(demo_server: Server, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    args = loadtest_args(demo_server.url, demo_server.token, "--calls", "2", "--seconds", "2",
                         "--screenshots", "2", "--size", SMALL, "--json", str(out))
    res = run_loadtest(args)
    assert res.returncode == 0, explain(res, demo_server)
    report = json.loads(out.read_text())
    assert len(report["calls"]) == 2
    for call in report["calls"]:
        assert call["ok"] and call["errors"] == [], call
        assert call["video_frames"] >= 20 and call["video_fps"] > 5, call
        assert call["audio_frames"] > 0 and call["voice_frames"] > 0, call
        assert len(call["screenshot_latencies_s"]) == 2 and all(s > 0 for s in call["screenshot_latencies_s"])
        assert 0 < call["setup_s"] < 5, call
        # The server filed both screenshots, and the load test closed its invite afterwards.
        media = demo_server.get(f"/api/v1/invites/{call['invite_id']}/media?kind=picture")
        assert len(media["items"]) == 2
        assert demo_server.get(f"/api/v1/invites/{call['invite_id']}")["status"] == "CLOSED"
    totals = report["totals"]
    assert (totals["calls"], totals["ok"], totals["failed"]) == (2, 2, 0)
    assert totals["setup_s"]["p50"] > 0 and totals["screenshot_latency_s"]["count"] == 4
    assert "totals: 2 call(s), 2 ok, 0 failed" in res.stdout
    assert "screenshot  p50" in res.stdout and "100%" in res.stderr


def test_a_video_file_is_sent_as_it_is(demo_server: Server, tmp_path: Path) -> None:
    """H.264 from an MP4: the claimant offers only H.264, so both legs of the call use it."""
    path = tmp_path / "camera.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"bf": "0", "g": "25", "profile": "baseline"}
        for i in range(50):
            img = np.full((240, 320, 3), 60, np.uint8)
            img[100:140, (i * 5) % 280 : (i * 5) % 280 + 40] = 250
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    out = tmp_path / "out.json"
    args = loadtest_args(demo_server.url, demo_server.token, "--calls", "1", "--seconds", "2",
                         "--screenshots", "1", "--video", str(path), "--json", str(out), "--no-progress")
    res = run_loadtest(args)
    assert res.returncode == 0, explain(res, demo_server)
    report = json.loads(out.read_text())
    assert report["camera"].startswith("h264 320x240")
    [call] = report["calls"]
    assert call["video_frames"] >= 20 and len(call["screenshot_latencies_s"]) == 1, call
    assert "%" not in res.stderr  # --no-progress: no bar


def test_recording_is_measured_or_its_absence_is_a_call_error(demo_server: Server, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    args = loadtest_args(demo_server.url, demo_server.token, "--calls", "1", "--seconds", "1", "--record",
                         "--size", SMALL, "--json", str(out))
    res = run_loadtest(args)
    [call] = json.loads(out.read_text())["calls"]
    if any("media_unavailable" in e for e in call["errors"]):  # a server without recording
        assert res.returncode == 1 and "record_start: media_unavailable" in res.stdout
        assert "1 of 1 call(s) failed" in res.stderr
    else:
        assert res.returncode == 0, explain(res, demo_server)
        assert call["recorded"] and call["record_stop_latency_s"] > 0, call
        videos = demo_server.get(f"/api/v1/invites/{call['invite_id']}/media?kind=video")
        assert len(videos["items"]) == 1


def test_ctrl_c_stops_the_run_and_leaves_no_call_behind(demo_server: Server, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    args = loadtest_args(demo_server.url, demo_server.token, "--calls", "2", "--seconds", "60", "--size", SMALL,
                         "--json", str(out))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        in_call: list[str] = []
        while len(in_call) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=5)
            invites = demo_server.get("/api/v1/cases/demo-case/invites")["invites"]
            in_call = [i["id"] for i in invites if i["status"] == "IN_CALL"]
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, f"{stdout}\n{stderr}"
    assert "interrupted" in stderr and "(interrupted)" in stdout
    report = json.loads(out.read_text())
    assert report["totals"]["interrupted"] is True
    assert all(c["video_frames"] > 0 for c in report["calls"]), report["calls"]
    for invite_id in in_call:  # peers and sockets closed, invites closed: nothing is left in a call
        assert demo_server.get(f"/api/v1/invites/{invite_id}")["status"] == "CLOSED"


def test_a_wrong_token_stops_before_any_call_with_a_clear_message(demo_server: Server) -> None:
    res = run_loadtest(loadtest_args(demo_server.url, "not-a-jwt", "--calls", "1", "--seconds", "2"), timeout_s=60)
    assert res.returncode == 2, explain(res)
    assert "refused the token (invalid_token)" in res.stderr and res.stdout == ""


# The refusals below come from the same preflight as the one above, which shows how the command reports them
# (exit 2, stderr only); they run in this process, without starting an interpreter each.
def options_for(url: str, token: str) -> LoadOptions:
    return LoadOptions(url=url, token=token, case_id="demo-case", calls=1, seconds=2, progress=False)


async def test_a_read_only_token_is_refused(demo_server: Server) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{demo_server.url}/dev/demo") as r:
        viewer = next(u["token"] for u in (await r.json())["users"] if u["id"] == "u-viewer")
    with pytest.raises(LoadTestError, match="read access"):
        await loadtest.run(options_for(demo_server.url, viewer))


async def test_an_unreachable_server_fails_fast() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(LoadTestError, match=re.escape(f"cannot reach the server at {url}")):
        await loadtest.run(options_for(url, "token"))
    assert time.monotonic() - started < 30


async def test_a_server_without_the_dev_outbox_is_refused(make_api: MakeApi) -> None:
    api = await make_api(seed=False)  # the app factory's server, not in demo mode: no outbox
    url = str(api.client.make_url("")).rstrip("/")
    with pytest.raises(LoadTestError, match=r"no dev outbox.*demo mode"):
        await loadtest.run(options_for(url, "token"))
