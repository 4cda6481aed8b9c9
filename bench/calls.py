"""`claimcam bench calls`: what a recorded 720p call costs the server, passthrough against a naive relay.

Each scenario (relay mode x number of calls) runs on a fresh `claimcam serve` in demo mode that this
command starts on 127.0.0.1 (outbox delivery, a temporary data folder, ICE on 127.0.0.1,
`CLAIMCAM_MEDIA_RELAY` set to the mode) and stops by PID, also on errors and Ctrl-C. The calls are
`claimcam loadtest`'s (bench/loadtest.py): an invite, a claimant bot looping a pre-encoded VP8 clip
(calls alternate between the bitrates asked for) and Opus, an inspector bot that counts frames without
decoding, a recording from start to end and a screenshot every few seconds (each call's schedule shifted by
1/N of the period, as independent inspectors would take them, rather than all calls at the same instant).

The server's CPU (utime + stime of /proc/<pid>/stat, every thread) and resident memory (VmRSS) are
read over the steady window only: from a warm-up after every call's video is up until the first call
is due to end, before any teardown. Memory per call is the peak in that window minus the server's
resident memory just before the calls. One more scenario without recording, at the largest number of
calls, gives the recording's cost.

With `--workers 1,2` every scenario also runs on `claimcam serve --workers N` (with a redis-server of
its own): CPU and memory are then the supervisor's and all its workers' together, the event-loop
figure is the busiest worker's, and each call's media owner (a key in Redis) shows how the kernel
spread the calls over the workers. The comparison says what N workers carry at the same per-call
quality, except on a machine too small to show it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import sys
import tempfile
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import redis.asyncio as aioredis
import redis.exceptions

from bench import procstat
from bench.chart import Panel, Series, draw_chart
from bench.clips import Clip, ClipError, pattern_clip, tone_clip
from bench.loadtest import (
    API_TIMEOUT_S,
    LINK_TIMEOUT_S,
    MAX_CALLS,
    SCREENSHOT_TIMEOUT_S,
    SETUP_TIMEOUT_S,
    TEARDOWN_TIMEOUT_S,
    Api,
    ApiError,
    CallReport,
    LoadOptions,
    LoadTestError,
    OutboxLinks,
    Shared,
    parse_size,
    percentile,
    preflight,
    run_call,
)
from bench.peers import install_passthrough
from bench.running import forget_sigterm, run_command, stop_on_sigterm
from bench.services import Child, ServiceError, Services, find_binary
from media.ice import install_host_addresses
from web.workers import MAX_WORKERS

RELAYS = ("passthrough", "naive")
PRODUCT = "passthrough"
CASE_ID = "demo-case"
INSPECTOR_ID = "u-inspector"
AUDIO_FPS = 50.0  # 20 ms Opus frames, what the claimant bot sends
WARMUP_S = 2.0  # after every call's video is up: recordings start, encoders settle
SPREAD_S = 2.0  # how much later than the first call the last one may come up and still get a full window
END_MARGIN_S = 0.5  # the window closes this long before the first call is due to end
# With one call: the end margin, and as much again for the window opening a little after the warm-up.
LONE_SPREAD_S = 2 * END_MARGIN_S
RSS_EVERY_S = 1.0
MIN_WINDOW_S = 1.0
MAX_SECONDS = 600.0
SETUP_PHASES = ("waiting", "invite", "link", "set-up", "first video frame")
MB = 1024 * 1024

# The targets; reported, never asserted.
TARGET_CPU_PER_CALL_PCT = 4.0
TARGET_RATIO = 10.0
TARGET_FPS = 29.0
TARGET_AUDIO_PCT = 99.0
TARGET_SCREENSHOT_P95_MS = 200.0
TARGET_SETUP_P95_MS = 1000.0
TARGET_RSS_PER_CALL_MB = 30.0
TARGET_SCALE_OUT = 1.8  # two workers carry this many times the calls of one, at the same per-call quality
# Below this many cores the bots (about 6 % of a core per call) share the cores with the workers, so
# adding workers cannot show what they would carry on a machine of their own.
SCALE_OUT_MIN_CORES = 4


@dataclass(frozen=True, slots=True)
class CallsOptions:
    calls: tuple[int, ...] = (8,)
    seconds: float = 30.0
    relays: tuple[str, ...] = RELAYS
    bitrates_mbps: tuple[float, ...] = (1.5, 2.5)
    screenshot_every_s: float = 5.0
    record: bool = True
    recording_overhead: bool = True
    size: tuple[int, int] = (1280, 720)
    fps: int = 30
    json_path: str | None = None
    chart_path: str | None = None
    markdown_path: str | None = None
    workdir: str | None = None
    workers: tuple[int, ...] = (1,)
    warmup_s: float = WARMUP_S

    def check(self) -> None:
        if not self.calls or any(not 1 <= n <= MAX_CALLS for n in self.calls):
            raise LoadTestError(f"--calls must be numbers 1..{MAX_CALLS}, e.g. 8 or 1,4,8")
        if not self.workers or any(not 1 <= n <= MAX_WORKERS for n in self.workers):
            raise LoadTestError(f"--workers must be numbers 1..{MAX_WORKERS}, e.g. 1 or 1,2")
        if not 1 <= self.seconds <= MAX_SECONDS:
            raise LoadTestError(f"--seconds must be 1..{MAX_SECONDS:g}")
        if not self.relays or any(r not in RELAYS for r in self.relays):
            raise LoadTestError("--relay must be passthrough, naive or both")
        if not self.bitrates_mbps or any(not 0.05 <= b <= 20 for b in self.bitrates_mbps):
            raise LoadTestError("--bitrate must be Mbit/s values 0.05..20, e.g. 1.5,2.5")
        if self.screenshot_every_s < 0:
            raise LoadTestError("--screenshot-every must be 0 (none) or more seconds")
        if not 1 <= self.fps <= 60:
            raise LoadTestError("--fps must be 1..60")
        if not 0 <= self.warmup_s <= MAX_SECONDS:
            raise LoadTestError(f"--warmup must be 0..{MAX_SECONDS:g} seconds")

    @property
    def run_seconds(self) -> float:
        """How long each call runs once its video is up: the window, its warm-up and the set-up spread.

        A run of single calls has no later call to wait for.
        """
        spread = SPREAD_S if max(self.calls) > 1 else LONE_SPREAD_S
        return self.seconds + self.warmup_s + spread

    @property
    def screenshots_per_call(self) -> int:
        if self.screenshot_every_s <= 0:
            return 0
        return max(1, math.floor(self.run_seconds / self.screenshot_every_s))


# ---- results ----


@dataclass
class Scenario:
    relay: str
    calls: int
    record: bool
    workers: int = 1
    window_s: float | None = None
    calls_in_window: int = 0  # calls whose video was up during the whole window
    server_cpu_pct: float | None = None  # of one core, every thread of the server (supervisor and workers)
    cpu_per_call_pct: float | None = None
    main_thread_pct: float | None = None  # the event loop's thread alone; of several workers, the busiest one's
    server_pids: list[int] = field(default_factory=list)  # the server and every process below it
    worker_pids: list[int] = field(default_factory=list)  # those running an event loop: the server, or its workers
    worker_cpu_pct: list[float] = field(default_factory=list)  # each worker, every thread; in worker_pids' order
    worker_loop_pct: list[float] = field(default_factory=list)  # each worker's event-loop thread
    supervisor_cpu_pct: float | None = None  # with several workers, the parent that only watches them
    calls_per_worker: list[int] = field(default_factory=list)  # calls whose media each worker owned, most first
    machine_busy_pct: float | None = None  # of all cores, everything on the machine
    generator_cpu_pct: float | None = None  # this process: the bots
    generator_cpu_per_call_pct: float | None = None
    rss_baseline_mb: float | None = None
    rss_peak_mb: float | None = None
    rss_per_call_mb: float | None = None
    min_fps: float | None = None
    mean_fps: float | None = None
    audio_delivered_pct: float | None = None  # the worst call's
    setup_p50_ms: float | None = None
    setup_p95_ms: float | None = None
    screenshot_p50_ms: float | None = None
    screenshot_p95_ms: float | None = None
    screenshots_taken: int = 0
    screenshots_stored: int = 0
    recordings_stored: int = 0
    failed_calls: int = 0
    errors: list[str] = field(default_factory=list)
    per_call: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        workers = f" on {self.workers} workers" if self.workers > 1 else ""
        return f"{self.relay} x {self.calls}{workers}" + ("" if self.record else " (no recording)")

    @property
    def quality_met(self) -> bool:
        """Every call up and at the issue's frame rate and audio over the whole window."""
        return (not self.failed_calls and not self.errors and self.calls_in_window == self.calls
                and self.min_fps is not None and self.min_fps >= TARGET_FPS
                and self.audio_delivered_pct is not None and self.audio_delivered_pct >= TARGET_AUDIO_PCT)


@dataclass
class CallsReport:
    options: CallsOptions
    scenarios: list[Scenario] = field(default_factory=list)
    clips: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False

    def find(self, relay: str, calls: int, record: bool = True, workers: int | None = None) -> Scenario | None:
        """`workers` None: the fewest workers the run asked for, where the headline numbers come from."""
        w = min(self.options.workers) if workers is None else workers
        return next((s for s in self.scenarios if (s.relay, s.calls, s.record, s.workers) == (relay, calls, record, w)),
                    None)

    @property
    def headline_relay(self) -> str:
        return PRODUCT if PRODUCT in self.options.relays else self.options.relays[0]

    @property
    def failed(self) -> list[Scenario]:
        return [s for s in self.scenarios if s.failed_calls or s.errors]

    def headline(self) -> dict[str, Any]:
        """The issue's numbers: passthrough (else the one relay run) at the largest number of calls, on the
        fewest workers asked for.

        fps and audio are the worst call of any scenario of that relay and number of workers.
        """
        o = self.options
        n = max(o.calls)
        relay = self.headline_relay
        main = self.find(relay, n, o.record)
        naive = self.find("naive", n, o.record)
        mains = [s for s in self.scenarios if s.relay == relay and s.record == o.record and s.workers == min(o.workers)]
        ratios = {}
        for calls in o.calls:
            p, q = self.find(PRODUCT, calls, o.record), self.find("naive", calls, o.record)
            ratios[str(calls)] = _ratio(q.cpu_per_call_pct if q else None, p.cpu_per_call_pct if p else None)
        off = self.find(relay, n, False) if o.record else None
        overhead = None
        if main is not None and off is not None and main.cpu_per_call_pct is not None \
                and off.cpu_per_call_pct is not None:
            overhead = main.cpu_per_call_pct - off.cpu_per_call_pct
        pass_main = main if relay == PRODUCT else None
        return {
            "calls": n,
            "relay": relay,
            "workers": min(o.workers),
            "cpu_per_call_pct": pass_main.cpu_per_call_pct if pass_main else None,
            "naive_cpu_per_call_pct": naive.cpu_per_call_pct if naive else None,
            "ratio_naive_to_passthrough": ratios[str(n)],
            "ratio_by_calls": ratios,
            "min_fps": _min(s.min_fps for s in mains),
            "audio_delivered_pct": _min(s.audio_delivered_pct for s in mains),
            "screenshot_p95_ms": main.screenshot_p95_ms if main else None,
            "setup_p95_ms": main.setup_p95_ms if main else None,
            "rss_per_call_mb": main.rss_per_call_mb if main else None,
            "recording_overhead_pct_per_call": overhead,
            "server_main_thread_pct": main.main_thread_pct if main else None,
            "generator_cpu_per_call_pct": main.generator_cpu_per_call_pct if main else None,
            "naive_min_fps": _min(s.min_fps for s in self.scenarios if s.relay == "naive"),
        }

    def targets(self) -> list[dict[str, Any]]:
        h = self.headline()
        n = h["calls"]
        rows = [
            (f"server CPU per recorded call at {n} calls", h["cpu_per_call_pct"], "<=", TARGET_CPU_PER_CALL_PCT,
             "% of a core"),
            (f"naive / passthrough CPU per call at {n} calls", h["ratio_naive_to_passthrough"], ">=", TARGET_RATIO,
             "x"),
            ("lowest video frame rate of any call", h["min_fps"], ">=", TARGET_FPS, "fps"),
            ("audio frames delivered, worst call", h["audio_delivered_pct"], ">=", TARGET_AUDIO_PCT, "%"),
            ("screenshot latency p95", h["screenshot_p95_ms"], "<=", TARGET_SCREENSHOT_P95_MS, "ms"),
            ("call set-up p95", h["setup_p95_ms"], "<=", TARGET_SETUP_P95_MS, "ms"),
            ("RSS per call", h["rss_per_call_mb"], "<=", TARGET_RSS_PER_CALL_MB, "MB"),
        ]
        out = []
        for name, value, op, target, unit in rows:
            met = None if value is None else value <= target if op == "<=" else value >= target
            out.append({"name": name, "value": value, "op": op, "target": target, "unit": unit, "met": met})
        return out

    def scale_out(self) -> dict[str, Any]:
        """The same calls on 1, 2, ... workers (the headline relay): per-call quality and cost side by side, and
        each worker count's capacity, the most calls tried at which every call kept the frame rate and audio."""
        o = self.options
        relay = self.headline_relay
        mine = [s for s in self.scenarios if s.relay == relay and s.record == o.record]
        by_calls = []
        for n in o.calls:
            found = {w: self.find(relay, n, o.record, w) for w in o.workers}
            by_calls.append({"calls": n, "by_workers": {str(w): _quality(s) for w, s in found.items() if s}})
        capacity: dict[str, Any] = {}
        for w in o.workers:
            tried = sorted((s for s in mine if s.workers == w), key=lambda s: s.calls)
            met = [s.calls for s in tried if s.quality_met]
            best = max(met) if met else None
            capacity[str(w)] = {
                "calls": best,
                "calls_per_worker": None if best is None else best / w,
                # The largest number tried still met the quality: the real capacity may be higher.
                "at_least": bool(tried) and best == tried[-1].calls,
            }
        cores = int(self.machine.get("nproc") or procstat.cores())
        low, high = capacity.get(str(min(o.workers))), capacity.get(str(max(o.workers)))
        ratio = None
        shown = len(o.workers) > 1 and len(o.calls) > 1 and cores >= SCALE_OUT_MIN_CORES
        if shown and low and high and low["calls"] and high["calls"] and not low["at_least"]:
            ratio = high["calls"] / low["calls"]
        return {
            "relay": relay,
            "workers": list(o.workers),
            "nproc": cores,
            "by_calls": by_calls,
            "capacity": capacity if len(o.calls) > 1 else None,
            "capacity_ratio": ratio,
            "capacity_ratio_at_least": bool(ratio is not None and high and high["at_least"]),
            "target_ratio": TARGET_SCALE_OUT,
            "caveat": _scale_out_caveat(cores, self.generator_per_call()) if len(o.workers) > 1 else None,
        }

    def generator_per_call(self) -> float | None:
        values = [s.generator_cpu_per_call_pct for s in self.scenarios if s.generator_cpu_per_call_pct is not None]
        return sum(values) / len(values) if values else None

    def as_json(self) -> dict[str, Any]:
        o = self.options
        return {
            **self.headline(),
            "targets": self.targets(),
            "scale_out": self.scale_out(),
            "machine": self.machine,
            "options": {"calls": list(o.calls), "workers": list(o.workers), "seconds": o.seconds,
                        "warmup_s": o.warmup_s, "relays": list(o.relays),
                        "bitrates_mbps": list(o.bitrates_mbps), "screenshot_every_s": o.screenshot_every_s,
                        "screenshots_per_call": o.screenshots_per_call, "record": o.record,
                        "size": f"{o.size[0]}x{o.size[1]}", "fps": o.fps, "run_seconds": o.run_seconds},
            "clips": self.clips,
            "interrupted": self.interrupted,
            "scenarios": [asdict(s) for s in self.scenarios],
        }


def _quality(s: Scenario) -> dict[str, Any]:
    return {
        "min_fps": s.min_fps, "audio_delivered_pct": s.audio_delivered_pct, "cpu_per_call_pct": s.cpu_per_call_pct,
        "busiest_loop_pct": s.main_thread_pct, "worker_loop_pct": s.worker_loop_pct,
        "calls_per_worker": s.calls_per_worker, "failed_calls": s.failed_calls, "quality_met": s.quality_met,
    }


def _scale_out_caveat(cores: int, generator_per_call: float | None) -> str | None:
    if cores >= SCALE_OUT_MIN_CORES:
        return None
    measured = "" if generator_per_call is None else f" ({generator_per_call:.1f} % per call in this run)"
    return (f"this machine has {cores} core(s): the load generator{measured} runs on the same cores as the "
            f"workers, so more workers cannot show what they carry; the {TARGET_SCALE_OUT:g}x target needs "
            f"at least {SCALE_OUT_MIN_CORES} cores, or the bots on another machine, to be shown")


def _min(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b is not None and b > 0 else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


# ---- one scenario ----


@dataclass(frozen=True, slots=True)
class Media:
    videos: tuple[Clip, ...]  # one per bitrate; call i sends videos[i % len]
    audio: Clip


@dataclass
class Window:
    """What the steady window measured: usage between its ends, the highest RSS read, and per call (by index)
    the video and audio frames its inspector received in it."""

    usage: procstat.Usage
    rss_peak: int
    frames: dict[int, tuple[int, int]]

    @property
    def calls(self) -> int:
        return len(self.frames)


def _counts(reports: list[CallReport]) -> dict[int, tuple[int, int]]:
    return {r.index: (r.received["video"].frames, r.received["audio"].frames) for r in reports if r.received}


async def _steady_window(
    pids: list[int], reports: list[CallReport], tasks: list[asyncio.Task[None]], options: CallsOptions
) -> Window | None:
    """Wait for every call's video (or its failure), let it settle, then read /proc until the first call is due."""
    loop = asyncio.get_running_loop()
    # The phases are plain fields that loadtest's run_call sets; reading them every 50 ms costs nothing.
    while not all(r.phase not in SETUP_PHASES or t.done() for r, t in zip(reports, tasks, strict=True)):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    running = [r for r in reports if r.phase == "running" and r.run_started is not None]
    if not running:
        return None
    start = loop.time() + options.warmup_s
    first_started = min(r.run_started for r in running if r.run_started is not None)
    end = min(start + options.seconds, first_started + options.run_seconds - END_MARGIN_S)
    if end - start < MIN_WINDOW_S:
        return None  # the calls came up too far apart to overlap for a measurement
    await asyncio.sleep(max(0.0, start - loop.time()))
    first, counts = procstat.sample(pids), _counts(running)
    peak = first.rss
    while (left := end - loop.time()) > 0:
        await asyncio.sleep(min(RSS_EVERY_S, left))
        peak = max(peak, procstat.rss_bytes(pids))
    last, counts_after = procstat.sample(pids), _counts(running)
    peak = max(peak, last.rss)
    # A call that left the run during the window is not one of the window's calls.
    frames = {i: (counts_after[i][0] - v, counts_after[i][1] - a) for i, (v, a) in counts.items()
              if next(r for r in running if r.index == i).phase == "running"}
    return Window(procstat.Usage.between(first, last), peak, frames)


async def demo_token(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(f"{url}/dev/demo") as r:
        body = await r.json()
    return str(next(u["token"] for u in body["users"] if u["id"] == INSPECTOR_ID))


async def _stored(api: Api, invite_id: str, kind: str) -> int:
    body = await api.call("GET", f"/invites/{urllib.parse.quote(invite_id, safe='')}/media?kind={kind}")
    return len(body.get("items", [])) if isinstance(body, dict) else 0


def server_settings(data_dir: Path, relay: str) -> dict[str, str]:
    return {
        "CLAIMCAM_DEMO": "true",
        "CLAIMCAM_DATA_DIR": str(data_dir),
        "CLAIMCAM_EMAIL_DELIVERY": "outbox",
        "CLAIMCAM_SMS_DELIVERY": "outbox",
        "CLAIMCAM_ICE_HOST_ADDRESSES": "127.0.0.1",
        "CLAIMCAM_MEDIA_RELAY": relay,
        "CLAIMCAM_LOG_LEVEL": "WARNING",
    }


async def media_owners(redis_url: str, reports: list[CallReport]) -> dict[int, str]:
    """Which node (worker) owns each call's media, by call index: the key it holds in Redis while the call runs."""
    # Imported here: it brings the rooms' database layer, half a second of start-up that one process does not need.
    from signalling.media_router import owner_key

    invites = [(r.index, r.invite_id) for r in reports if r.invite_id]
    if not invites:
        return {}
    client = aioredis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        owners = await client.mget([owner_key(invite_id) for _, invite_id in invites])
    except (redis.exceptions.RedisError, OSError):
        return {}  # the spread goes unreported; the calls' own results still stand
    finally:
        await client.aclose()
    return {index: owner.decode() if isinstance(owner, bytes) else owner
            for (index, _), owner in zip(invites, owners, strict=True) if owner}


def spread(owners: dict[int, str], calls: list[int], workers: int) -> list[int]:
    """Calls per worker, most first, counting only `calls`; a worker that owns none counts 0."""
    counts: dict[str, int] = {}
    for index in calls:
        if index in owners:
            counts[owners[index]] = counts.get(owners[index], 0) + 1
    return sorted([*counts.values(), *[0] * max(0, workers - len(counts))], reverse=True)


async def run_scenario(
    options: CallsOptions, relay: str, calls: int, record: bool, media: Media, base: Path,
    http: aiohttp.ClientSession, say: Callable[[str], None], workers: int = 1,
) -> Scenario:
    """One fresh server (of `workers` processes), `calls` concurrent calls, the steady window measured; the server
    is stopped after."""
    result = Scenario(relay, calls, record, workers)
    async with Services(base, http, say) as services:
        settings = server_settings(base / "var", relay)
        redis_url = None
        if workers > 1:
            redis_url = (await services.redis()).url
            settings["CLAIMCAM_REDIS_URL"] = redis_url
        name = f"claimcam-{relay}-{calls}" + (f"-w{workers}" if workers > 1 else "") + ("" if record else "-norec")
        server = await services.claimcam(name, settings, workers)
        pids = procstat.process_tree(server.child.pid)
        result.server_pids = pids
        # The supervisor only waits on its workers; they run the event loops.
        result.worker_pids = procstat.children(server.child.pid) if workers > 1 else [server.child.pid]
        if workers > 1:
            say(f"{name}: supervisor pid {pids[0]}, workers {', '.join(map(str, result.worker_pids))}")
        token = await demo_token(http, server.url)
        api = Api(server.url, token, http)
        load = LoadOptions(url=server.url, token=token, case_id=CASE_ID, calls=calls, seconds=options.run_seconds,
                           screenshots=options.screenshots_per_call, record=record,
                           ice_host_addresses=("127.0.0.1",), size=options.size, fps=options.fps, progress=False)
        contact_id, staff_ice = await preflight(api, load)
        outbox = OutboxLinks(api)
        shared = [Shared(load, api, outbox, contact_id, staff_ice, video, media.audio) for video in media.videos]
        reports = [CallReport(i + 1) for i in range(calls)]
        baseline = procstat.rss_bytes(pids)
        # Inspectors take screenshots independently: the calls' schedules are spread over the period, not in step.
        tasks = [asyncio.ensure_future(run_call(shared[i % len(shared)], r, (i + 0.5) / calls))
                 for i, r in enumerate(reports)]
        owners: dict[int, str] = {}
        try:
            window = await _steady_window(pids, reports, tasks, options)
            # Read right away: a call's key goes when the call ends, soon after the window.
            owners = await media_owners(redis_url, reports) if redis_url else {}
            budget = API_TIMEOUT_S * 2 + LINK_TIMEOUT_S + SETUP_TIMEOUT_S + options.run_seconds
            budget += SCREENSHOT_TIMEOUT_S + API_TIMEOUT_S + 5 + TEARDOWN_TIMEOUT_S
            _, pending = await asyncio.wait(tasks, timeout=budget)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        _fill(result, reports, media, window, baseline)
        if window is not None:
            in_window = sorted(window.frames)
            result.calls_per_worker = spread(owners, in_window, workers) if redis_url else [len(in_window)]
        for r in reports:
            if r.invite_id:
                result.screenshots_stored += await _stored(api, r.invite_id, "picture")
                result.recordings_stored += await _stored(api, r.invite_id, "video")
        _check_server(server.child, result)
    return result


def _check_server(child: Child, result: Scenario) -> None:
    if not child.running:
        result.errors.append(f"the server exited during the run (code {child.proc.returncode}):\n{child.log_tail()}")
    elif result.workers > 1 and (now := procstat.children(child.pid)) != result.worker_pids:
        result.errors.append(f"a worker was replaced during the run (pids {result.worker_pids}, now {now}):\n"
                             f"{child.log_tail()}")


def _fill(result: Scenario, reports: list[CallReport], media: Media, window: Window | None, baseline: int) -> None:
    setups = [r.setup_s for r in reports if r.setup_s is not None]
    shots = [s for r in reports for s in r.screenshot_latencies_s]
    seconds = window.usage.seconds if window else 0.0
    frames = window.frames if window else {}
    # Over the steady window; a call that was not up during all of it delivered nothing there.
    fps = [frames[r.index][0] / seconds if r.index in frames else 0.0 for r in reports]
    audio = [100 * frames[r.index][1] / (AUDIO_FPS * seconds) if r.index in frames else 0.0 for r in reports]
    result.setup_p50_ms, result.setup_p95_ms = _ms(percentile(setups, 50)), _ms(percentile(setups, 95))
    result.screenshot_p50_ms, result.screenshot_p95_ms = _ms(percentile(shots, 50)), _ms(percentile(shots, 95))
    result.screenshots_taken = len(shots)
    if window is not None:
        result.min_fps, result.mean_fps = min(fps, default=None), sum(fps) / len(fps) if fps else None
        result.audio_delivered_pct = min(audio, default=None)
    result.failed_calls = sum(1 for r in reports if not r.ok)
    result.rss_baseline_mb = baseline / MB
    for i, r in enumerate(reports):
        video = media.videos[i % len(media.videos)]
        result.per_call.append({
            "call": r.index, "invite_id": r.invite_id, "bitrate_mbps": round(video.bitrate_bps / 1e6, 2),
            "setup_ms": _ms(r.setup_s), "fps": fps[i] if window else None, "fps_whole_run": r.video_fps,
            "audio_delivered_pct": audio[i] if window else None, "audio_frames": r.audio_frames,
            "screenshots_ms": [s * 1000 for s in r.screenshot_latencies_s], "recorded": r.recorded,
            "ok": r.ok, "errors": r.errors,
        })
        result.errors += [f"call {r.index}: {e}" for e in r.errors]
    if window is None:
        result.errors.append("no steady window: no call's video came up, or the calls came up too far apart")
        return
    u = window.usage
    result.window_s = u.seconds
    result.calls_in_window = window.calls
    result.server_cpu_pct = u.cpu_pct
    loops = [p for p in u.processes if p.pid in result.worker_pids]
    result.worker_cpu_pct = [p.cpu_pct for p in loops]
    result.worker_loop_pct = [p.main_thread_pct for p in loops]
    result.main_thread_pct = max(result.worker_loop_pct, default=None)
    if result.workers > 1 and u.processes:
        result.supervisor_cpu_pct = u.processes[0].cpu_pct
    result.machine_busy_pct = u.machine_busy_pct
    result.generator_cpu_pct = u.own_cpu_pct
    result.rss_peak_mb = window.rss_peak / MB
    if window.calls:
        result.cpu_per_call_pct = u.cpu_pct / window.calls
        result.generator_cpu_per_call_pct = u.own_cpu_pct / window.calls
        result.rss_per_call_mb = (window.rss_peak - baseline) / MB / window.calls


# ---- the run ----


def _make_media(options: CallsOptions) -> Media:
    width, height = options.size
    videos = tuple(pattern_clip(width, height, fps=options.fps, bitrate=round(b * 1e6)) for b in options.bitrates_mbps)
    return Media(videos, tone_clip())


def _plan(options: CallsOptions) -> list[tuple[int, str, int, bool]]:
    """(workers, relay, calls, record) of every scenario, in the order they run."""
    plan = [(w, relay, n, options.record) for w in options.workers for relay in options.relays for n in options.calls]
    if options.record and options.recording_overhead:
        relay = PRODUCT if PRODUCT in options.relays else options.relays[0]
        plan.append((min(options.workers), relay, max(options.calls), False))
    return plan


def _machine() -> dict[str, Any]:
    return {"nproc": procstat.cores(), "cpu_model": procstat.cpu_model(),
            "loadavg_1m_at_start": procstat.load_average_1m()}


async def run(options: CallsOptions, err: TextIO = sys.stderr) -> CallsReport:
    """Every scenario in turn; raises LoadTestError when the run cannot start, keeps partial results on Ctrl-C."""
    options.check()

    def say(text: str) -> None:
        print(f"bench calls: {text}", file=err, flush=True)

    report = CallsReport(options, machine=_machine())
    if max(options.workers) > 1:
        try:
            find_binary("redis-server")
        except ServiceError as e:
            raise LoadTestError(f"--workers above 1 needs redis-server: {e}") from None
    try:
        media = await asyncio.to_thread(_make_media, options)
    except ClipError as e:
        raise LoadTestError(str(e)) from None
    report.clips = [v.describe() for v in media.videos] + [media.audio.describe()]
    for clip in report.clips:
        say(f"clip: {clip}")
    install_passthrough()
    workdir = Path(options.workdir) if options.workdir else Path(tempfile.mkdtemp(prefix="claimcam-bench-calls-"))
    stop_on_sigterm(asyncio.current_task())
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=API_TIMEOUT_S)) as http:
            for w, relay, n, record in _plan(options):
                name = f"{relay}-{n}" + (f"-w{w}" if w > 1 else "") + ("" if record else "-norec")
                on = f" on {w} workers" if w > 1 else ""
                say(f"scenario {name}: {n} call(s){on} x {options.run_seconds:g} s, window {options.seconds:g} s")
                try:
                    scenario = await run_scenario(options, relay, n, record, media, workdir / name, http, say, w)
                except (ServiceError, ApiError, aiohttp.ClientError) as e:
                    scenario = Scenario(relay, n, record, w, errors=[f"{type(e).__name__}: {e}"])
                report.scenarios.append(scenario)
                say(_one_line(scenario))
    except asyncio.CancelledError:
        report.interrupted = True
        raise
    finally:
        forget_sigterm()
        if not options.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        _write_outputs(report, err)
    return report


def _one_line(s: Scenario) -> str:
    cpu = "-" if s.cpu_per_call_pct is None else f"{s.cpu_per_call_pct:.1f} %"
    fps = "-" if s.min_fps is None else f"{s.min_fps:.1f}"
    failed = f", {s.failed_calls} call(s) FAILED" if s.failed_calls else ""
    return f"{s.name}: server CPU per call {cpu} of a core, min fps {fps}{failed}"


# ---- output ----


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pair(a: float | None, b: float | None, digits: int = 0) -> str:
    return f"{_f(a, digits)} / {_f(b, digits)}"


def _loops(s: Scenario) -> str:
    """The busiest event loop, and with several workers each one's, so an uneven spread shows."""
    if s.workers == 1 or not s.worker_loop_pct:
        return f"{_f(s.main_thread_pct)} %"
    return f"{_f(s.main_thread_pct)} % ({' / '.join(_f(v) for v in s.worker_loop_pct)})"


def _spread(s: Scenario) -> str:
    return " + ".join(map(str, s.calls_per_worker)) or "-"


def format_markdown(report: CallsReport) -> str:
    o = report.options
    m = report.machine
    lines = [
        f"Machine: {m.get('nproc')} cores ({m.get('cpu_model')}); load average {m.get('loadavg_1m_at_start')} "
        "at the start.",
        f"Calls: {o.size[0]}x{o.size[1]} VP8 at {', '.join(f'{b:g}' for b in o.bitrates_mbps)} Mbit/s (alternating) "
        f"+ Opus, {'recorded, ' if o.record else ''}a screenshot every {o.screenshot_every_s:g} s "
        f"({o.screenshots_per_call} per call); steady window {o.seconds:g} s after {o.warmup_s:g} s of warm-up.",
        "",
        "| relay | calls | workers | calls per worker | server CPU per call (% of a core) | server CPU total "
        "| event-loop thread (busiest; each worker) | machine busy "
        "| RSS per call (MB) | min fps | audio delivered (worst call) | set-up p50 / p95 (ms) "
        "| screenshot p50 / p95 (ms) | screenshots stored | load generator per call | failed calls |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in report.scenarios:
        lines.append(
            f"| {s.relay}{'' if s.record else ' (no recording)'} | {s.calls} | {s.workers} | {_spread(s)} "
            f"| {_f(s.cpu_per_call_pct)} | {_f(s.server_cpu_pct)} % | {_loops(s)} | {_f(s.machine_busy_pct, 0)} % "
            f"| {_f(s.rss_per_call_mb)} | {_f(s.min_fps)} | {_f(s.audio_delivered_pct)} % "
            f"| {_pair(s.setup_p50_ms, s.setup_p95_ms)} | {_pair(s.screenshot_p50_ms, s.screenshot_p95_ms)} "
            f"| {s.screenshots_stored} of {s.screenshots_taken} | {_f(s.generator_cpu_per_call_pct)} % "
            f"| {s.failed_calls} |"
        )
    h = report.headline()
    ratios = ", ".join(f"{n} call(s) {_f(r)}x" for n, r in h["ratio_by_calls"].items() if r is not None)
    lines += ["", f"Naive / passthrough CPU per call: {ratios or '-'}."]
    if h["recording_overhead_pct_per_call"] is not None:
        lines.append(f"Recording costs {_f(h['recording_overhead_pct_per_call'], 2)} % of a core per call "
                     f"({h['relay']}, {h['calls']} calls, with minus without).")
    if len(o.workers) > 1:
        lines += ["", *format_scale_out(report.scale_out())]
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    for t in report.targets():
        met = "n/a" if t["met"] is None else "yes" if t["met"] else "**no**"
        lines.append(f"| {t['name']} {t['op']} {t['target']:g} {t['unit']} | {_f(t['value'])} {t['unit']} | {met} |")
    if report.interrupted:
        lines += ["", "(interrupted: the scenarios above are the ones that finished)"]
    problems = [f"- {s.name}: {e.splitlines()[0]}" for s in report.scenarios for e in s.errors]
    if problems:
        lines += ["", "Errors:", *problems]
    return "\n".join(lines)


def _workers(n: int) -> str:
    return f"{n} worker" + ("" if n == 1 else "s")


def format_scale_out(scale: dict[str, Any]) -> list[str]:
    """Per-call quality and cost of the same calls on each number of workers, then the capacities."""
    lines = [f"Scale-out ({scale['relay']}, {' vs '.join(_workers(w) for w in scale['workers'])}), at the same "
             "number of calls: min fps, audio of the worst call, server CPU per call, busiest event loop, calls per "
             "worker:"]
    for row in scale["by_calls"]:
        each = [f"{_workers(int(w))} {_f(q['min_fps'])} fps, {_f(q['audio_delivered_pct'])} %, "
                f"{_f(q['cpu_per_call_pct'])} % per call, loop {_f(q['busiest_loop_pct'])} %, "
                f"{' + '.join(map(str, q['calls_per_worker'])) or '-'}" for w, q in row["by_workers"].items()]
        lines.append(f"- {row['calls']} call(s): {'; '.join(each) or '-'}")
    capacity = scale["capacity"]
    if capacity is None:
        lines.append("Capacity: give several call counts (e.g. --calls 4,8,12) to find it.")
    else:
        each = []
        for w, c in capacity.items():
            if c["calls"] is None:
                each.append(f"{_workers(int(w))}: none of the call counts tried")
            else:
                more = " (the most tried: may be more)" if c["at_least"] else ""
                each.append(f"{_workers(int(w))}: {c['calls']} calls{more}, {_f(c['calls_per_worker'])} per worker")
        lines.append(f"Capacity (most calls with every call at >= {TARGET_FPS:g} fps and >= {TARGET_AUDIO_PCT:g} % "
                     f"audio): {'; '.join(each)}.")
    if scale["caveat"]:
        lines.append(f"No scale-out ratio is claimed: {scale['caveat']}.")
    elif scale["capacity_ratio"] is not None:
        at_least = ">= " if scale["capacity_ratio_at_least"] else ""
        lines.append(f"{_workers(max(scale['workers']))} carry {at_least}{_f(scale['capacity_ratio'], 2)}x the calls "
                     f"of {_workers(min(scale['workers']))} (target >= {scale['target_ratio']:g}x).")
    else:
        lines.append("No scale-out ratio: a capacity is missing, or the fewer workers kept up at every count tried.")
    return lines


def chart_panels(report: CallsReport) -> list[Panel]:
    o = report.options
    cpu, fps = [], []
    for w in o.workers:
        for relay in o.relays:
            mine = sorted((s for s in report.scenarios if (s.relay, s.record, s.workers) == (relay, o.record, w)),
                          key=lambda s: s.calls)
            label = relay if len(o.workers) == 1 else f"{relay}, {_workers(w)}"
            cpu.append(Series(label, tuple((s.calls, s.cpu_per_call_pct) for s in mine
                                           if s.cpu_per_call_pct is not None)))
            fps.append(Series(label, tuple((s.calls, s.min_fps) for s in mine if s.min_fps is not None)))
    return [
        Panel("Server CPU per call", "calls", "% of one core", tuple(cpu), TARGET_CPU_PER_CALL_PCT,
              f"target {TARGET_CPU_PER_CALL_PCT:g} %", x_ticks=(0.0,)),
        Panel("Lowest video frame rate of any call", "calls", "fps at the inspector", tuple(fps), TARGET_FPS,
              f"target {TARGET_FPS:g} fps", y_min_top=float(o.fps), x_ticks=(0.0,)),
    ]


def _write_outputs(report: CallsReport, err: TextIO) -> None:
    """Print the table and write the files asked for (also for an interrupted run)."""
    text = format_markdown(report)
    print(text, flush=True)
    o = report.options

    def json_file(path: Path) -> None:
        path.write_text(json.dumps(report.as_json(), indent=2) + "\n")

    def markdown_file(path: Path) -> None:
        path.write_text(text + "\n")

    def chart_file(path: Path) -> None:
        draw_chart(chart_panels(report), path)

    writers = [(o.json_path, json_file), (o.markdown_path, markdown_file), (o.chart_path, chart_file)]
    for where, write in writers:
        if not where:
            continue
        path = Path(where)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path)
        except OSError as e:
            print(f"bench calls: cannot write {path}: {e}", file=err, flush=True)
        else:
            print(f"bench calls: wrote {path}", file=err, flush=True)


# ---- command line ----


def _numbers(kind: Callable[[str], Any]) -> Callable[[str], tuple[Any, ...]]:
    def parse(text: str) -> tuple[Any, ...]:
        try:
            values = tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
        return tuple(sorted(set(values))) if kind is int else values

    return parse


def _relays(text: str) -> tuple[str, ...]:
    if text == "both":
        return RELAYS
    if text not in RELAYS:
        raise argparse.ArgumentTypeError("the relay is passthrough, naive or both")
    return (text,)


DESCRIPTION = (
    "Measure what calls cost the server: fresh `claimcam serve` processes on 127.0.0.1 (demo mode), N calls of "
    "headless bots with pre-encoded 720p VP8 and Opus, recorded, with screenshots; server CPU and memory per call "
    "from /proc, frame rates, audio, set-up and screenshot latency; passthrough against a naive decode/re-encode "
    "relay; with --workers 1,2, one server process against several. Exit code: 0 every call ok, 1 a call failed, "
    "2 the run could not start, 130 Ctrl-C, 143 SIGTERM."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calls", type=_numbers(int), default=(8,),
                   help="concurrent calls, or a list like 1,4,8 (default 8)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of the measured steady window (default 30)")
    p.add_argument("--warmup", dest="warmup_s", type=float, default=WARMUP_S,
                   help=f"seconds from every call's video being up to the window: recordings start, encoders settle "
                        f"(default {WARMUP_S:g})")
    p.add_argument("--relay", dest="relays", type=_relays, default=RELAYS,
                   help="passthrough, naive or both (default both)")
    p.add_argument("--bitrate", dest="bitrates_mbps", type=_numbers(float), default=(1.5, 2.5),
                   help="video bitrates in Mbit/s; calls alternate between them (default 1.5,2.5)")
    p.add_argument("--screenshot-every", dest="screenshot_every_s", type=float, default=5.0,
                   help="seconds between screenshots in each call; 0 for none (default 5)")
    p.add_argument("--record", action=argparse.BooleanOptionalAction, default=True,
                   help="record every call (default on)")
    p.add_argument("--recording-overhead", action=argparse.BooleanOptionalAction, default=True,
                   help="one more scenario without recording at the largest number of calls (default on)")
    p.add_argument("--size", type=parse_size, default=(1280, 720), help="camera size (default 1280x720)")
    p.add_argument("--fps", type=int, default=30, help="camera frame rate (default 30)")
    p.add_argument("--json", dest="json_path", help="write the results as JSON to this file")
    p.add_argument("--chart", dest="chart_path", help="write a PNG chart: CPU per call and min fps against calls")
    p.add_argument("--markdown", dest="markdown_path", help="write the Markdown table to this file")
    p.add_argument("--workdir", help="keep the servers' data and logs here (default: a temporary folder, removed)")
    p.add_argument("--workers", type=_numbers(int), default=(1,),
                   help="server processes (`claimcam serve --workers N`, with a redis-server of its own when above "
                        "1), or a list like 1,2 to run every scenario on each (default 1)")


def options_from(args: argparse.Namespace) -> CallsOptions:
    return CallsOptions(
        calls=tuple(args.calls), seconds=args.seconds, relays=tuple(args.relays),
        bitrates_mbps=tuple(args.bitrates_mbps), screenshot_every_s=args.screenshot_every_s, record=args.record,
        recording_overhead=args.recording_overhead, size=args.size, fps=args.fps, json_path=args.json_path,
        chart_path=args.chart_path, markdown_path=args.markdown_path, workdir=args.workdir, workers=tuple(args.workers),
        warmup_s=args.warmup_s,
    )


def main(argv: list[str]) -> int:
    """`claimcam bench calls`: 0 when every call succeeded, 1 when one failed, 2 when the run could not start."""
    parser = argparse.ArgumentParser(prog="claimcam bench calls", description=DESCRIPTION)
    add_arguments(parser)
    return command(parser.parse_args(argv))


def command(args: argparse.Namespace) -> int:
    """What `claimcam bench calls` runs once its options are parsed."""
    options = options_from(args)

    async def start() -> CallsReport:
        options.check()
        install_host_addresses(("127.0.0.1",))
        return await run(options)

    return run_command("claimcam bench calls", start,
                       lambda r: f"{len(r.failed)} scenario(s) had failed calls or errors" if r.failed else None,
                       (LoadTestError,))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
