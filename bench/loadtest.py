"""`claimcam loadtest`: whole calls against a running server, measured from the participants' side.

For each call: an invite through the REST API (staff token with full access to the case), the
claimant's link from the dev outbox (demo mode), a claimant bot and an inspector bot over Socket.IO
`/call` and WebRTC, S seconds of media with K screenshots spread over them (and a recording when
asked), then `end_call` and the invite closed. Calls run concurrently; the run is bounded in count
and time and cleans up after itself, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import math
import sys
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import aiohttp

from bench.clips import Clip, ClipError, pattern_clip, tone_clip, video_file_clip
from bench.peers import (
    CallSocket,
    Counter,
    RtcBot,
    SignallingError,
    claimant_bot,
    inspector_bot,
    install_passthrough,
    rtc_configuration,
)
from bench.running import forget_sigterm, run_command, stop_on_sigterm, write_json
from media.ice import install_host_addresses

MAX_CALLS = 100
MAX_SECONDS = 3600.0
MAX_SCREENSHOTS = 100
API_TIMEOUT_S = 10.0
LINK_TIMEOUT_S = 10.0  # from the invite's creation to its message in the outbox
SETUP_TIMEOUT_S = 20.0  # from the claimant's connect to the first video frame at the inspector
SCREENSHOT_TIMEOUT_S = 15.0
TEARDOWN_TIMEOUT_S = 15.0

EXIT_OK, EXIT_CALL_FAILED, EXIT_CANNOT_START, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


class LoadTestError(Exception):
    """The run cannot start: bad options, unreachable server, refused token, no outbox."""


@dataclass(frozen=True, slots=True)
class LoadOptions:
    url: str
    token: str
    case_id: str
    calls: int
    seconds: float
    screenshots: int = 0
    record: bool = False
    json_path: str | None = None
    contact_id: str | None = None
    method: str = "sms"
    task_id: str | None = None
    link_from_outbox: bool = True
    ice_host_addresses: tuple[str, ...] = ()
    video_file: str | None = None
    size: tuple[int, int] = (640, 480)
    fps: int = 30
    setup_timeout_s: float = SETUP_TIMEOUT_S
    progress: bool = True

    def check(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LoadTestError(f"--url must be http://host[:port] or https://host[:port], not {self.url!r}")
        if not 1 <= self.calls <= MAX_CALLS:
            raise LoadTestError(f"--calls must be 1..{MAX_CALLS}")
        if not 1 <= self.seconds <= MAX_SECONDS:
            raise LoadTestError(f"--seconds must be 1..{MAX_SECONDS:g}")
        if not 0 <= self.screenshots <= MAX_SCREENSHOTS:
            raise LoadTestError(f"--screenshots must be 0..{MAX_SCREENSHOTS}")
        if self.method not in ("sms", "email"):
            raise LoadTestError("--method must be sms or email")
        if not self.link_from_outbox:
            raise LoadTestError("claimant links can only be read from the dev outbox (--link-from-outbox) so far: "
                                "there is no other way for a load test to receive an SMS or email")

    @property
    def base_url(self) -> str:
        return self.url.rstrip("/")


# ---- results ----


UNREPORTED = ("run_started", "received")


@dataclass
class CallReport:
    index: int
    invite_id: str = ""
    phase: str = "waiting"
    setup_s: float | None = None  # claimant connect -> first video frame at the inspector
    video_frames: int = 0  # received by the inspector, whole call
    video_keyframes: int = 0
    video_fps: float | None = None  # during the S seconds of the run
    audio_frames: int = 0  # the claimant's microphone, received by the inspector
    voice_frames: int = 0  # the inspector's microphone, received by the claimant
    keyframe_requests: int = 0  # PLI/FIR the claimant's camera got from the server
    screenshot_latencies_s: list[float] = field(default_factory=list)
    recorded: bool = False  # record_stop answered with the filed video
    record_stop_latency_s: float | None = None
    ran_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    run_started: float | None = None  # monotonic clock, for the progress bar; not reported
    # The inspector's live counters while the call runs (`claimcam bench calls` reads them over its window).
    received: dict[str, Counter] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors and self.phase == "done"

    def as_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in UNREPORTED}
        out["ok"] = self.ok
        return out


def percentile(values: Sequence[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


@dataclass
class LoadReport:
    options: LoadOptions
    calls: list[CallReport]
    camera: str = ""
    microphone: str = ""
    wall_s: float = 0.0
    cpu_s: float = 0.0
    interrupted: bool = False

    @property
    def failed(self) -> list[CallReport]:
        return [c for c in self.calls if not c.ok]

    def totals(self) -> dict[str, Any]:
        setups = [c.setup_s for c in self.calls if c.setup_s is not None]
        shots = [s for c in self.calls for s in c.screenshot_latencies_s]
        fps = [c.video_fps for c in self.calls if c.video_fps is not None]
        return {
            "calls": len(self.calls),
            "ok": len(self.calls) - len(self.failed),
            "failed": len(self.failed),
            "setup_s": {"p50": percentile(setups, 50), "p95": percentile(setups, 95),
                        "max": max(setups, default=None), "count": len(setups)},
            "screenshot_latency_s": {"p50": percentile(shots, 50), "p95": percentile(shots, 95),
                                     "max": max(shots, default=None), "count": len(shots)},
            "video_frames": sum(c.video_frames for c in self.calls),
            "video_fps_mean": sum(fps) / len(fps) if fps else None,
            "audio_frames": sum(c.audio_frames for c in self.calls),
            "voice_frames": sum(c.voice_frames for c in self.calls),
            "wall_s": self.wall_s,
            "generator_cpu_s": self.cpu_s,
            "generator_cpu_percent": 100 * self.cpu_s / self.wall_s if self.wall_s > 0 else None,
            "interrupted": self.interrupted,
        }

    def as_json(self) -> dict[str, Any]:
        o = self.options
        return {
            "url": o.base_url, "case_id": o.case_id, "calls_requested": o.calls, "seconds": o.seconds,
            "screenshots": o.screenshots, "record": o.record, "method": o.method,
            "camera": self.camera, "microphone": self.microphone,
            "calls": [c.as_json() for c in self.calls], "totals": self.totals(),
        }


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms"


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} s"


def format_report(report: LoadReport) -> str:
    o = report.options
    lines = [
        f"claimcam loadtest: {len(report.calls)} call(s) x {o.seconds:g} s against {o.base_url}, case {o.case_id}",
        f"  camera: {report.camera}",
        f"  microphone: {report.microphone}",
        "",
        f"{'call':>4}  {'invite':<8}  {'set-up':>7}  {'video':>6}  {'fps':>5}  {'audio':>6}  {'voice':>6}  "
        f"{'screenshots (ms)':<20} " + ("record   " if o.record else "") + "result",
    ]
    for c in report.calls:
        shots = ", ".join(f"{s * 1000:.0f}" for s in c.screenshot_latencies_s) or "-"
        fps = "-" if c.video_fps is None else f"{c.video_fps:.1f}"
        result = "ok" if c.ok else "FAILED" if c.phase == "done" else f"FAILED at {c.phase}"
        if o.record:
            stop = c.record_stop_latency_s
            result = (f"{stop * 1000:.0f} ms" if c.recorded and stop is not None else "-").ljust(8) + " " + result
        lines.append(f"{c.index:>4}  {c.invite_id[:8] or '-':<8}  {_s(c.setup_s):>7}  {c.video_frames:>6}  "
                     f"{fps:>5}  {c.audio_frames:>6}  {c.voice_frames:>6}  {shots:<20} {result}")
    problems = [f"  call {c.index}: {e}" for c in report.calls for e in c.errors]
    if problems:
        lines += ["", "errors:", *problems]
    t = report.totals()
    su, sh = t["setup_s"], t["screenshot_latency_s"]
    cpu = t["generator_cpu_percent"]
    cpu_text = "-" if cpu is None else f"{cpu:.0f} % of one core, {cpu / t['calls']:.1f} % per call"
    fps_mean = t["video_fps_mean"]
    lines += [
        "",
        f"totals: {t['calls']} call(s), {t['ok']} ok, {t['failed']} failed, in {report.wall_s:.1f} s"
        + (" (interrupted)" if report.interrupted else ""),
        f"  set-up      p50 {_s(su['p50'])}  p95 {_s(su['p95'])}  max {_s(su['max'])}",
        f"  screenshot  p50 {_ms(sh['p50'])}  p95 {_ms(sh['p95'])}  max {_ms(sh['max'])}  ({sh['count']} taken)",
        f"  video {t['video_frames']} frames ({'-' if fps_mean is None else f'{fps_mean:.1f}'} fps per call), "
        f"audio {t['audio_frames']} frames, voice {t['voice_frames']} frames",
        "  load generator CPU: " + cpu_text,
    ]
    return "\n".join(lines)


# ---- the server's REST API ----


class ApiError(Exception):
    def __init__(self, method: str, path: str, status: int, code: str, message: str) -> None:
        super().__init__(f"{method} {path} answered {status} {code}: {message}".rstrip(": "))
        self.status = status
        self.code = code


class Api:
    def __init__(self, base_url: str, token: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self._token = token
        self._session = session

    async def call(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        headers = {"Authorization": f"Bearer {self._token}"} if auth else {}
        async with self._session.request(method, f"{self.base_url}/api/v1{path}", json=body, headers=headers) as r:
            try:
                data = await r.json(content_type=None)
            except (ValueError, aiohttp.ContentTypeError):
                data = None
            if r.status >= 400:
                err = data.get("error") if isinstance(data, dict) else None
                err = err if isinstance(err, dict) else {}
                code, message = str(err.get("code", "")), str(err.get("message", ""))
                raise ApiError(method, f"/api/v1{path}", r.status, code, message)
            return data

    async def create_invite(self, case_id: str, contact_id: str, method: str, task_id: str | None) -> str:
        body: dict[str, Any] = {"contact_id": contact_id, "method": method}
        if task_id:
            body["task_id"] = task_id
        invite = await self.call("POST", f"/cases/{urllib.parse.quote(case_id, safe='')}/invites", body)
        return str(invite["id"])

    async def close_invite(self, invite_id: str) -> None:
        await self.call("POST", f"/invites/{urllib.parse.quote(invite_id, safe='')}/close", {})

    async def staff_ice_servers(self) -> list[dict[str, Any]]:
        return list((await self.call("GET", "/ice-servers"))["ice_servers"])

    async def claimant_ice_servers(self, link_token: str) -> list[dict[str, Any]]:
        path = f"/join/{urllib.parse.quote(link_token, safe='')}/ice-servers"
        return list((await self.call("GET", path, auth=False))["ice_servers"])


class OutboxLinks:
    """Claimant links from `GET /api/v1/dev/outbox` (demo mode), one shared poll for every call."""

    def __init__(self, api: Api, interval_s: float = 0.1) -> None:
        self._api = api
        self._interval = interval_s
        self._links: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._last = float("-inf")

    async def refresh(self) -> None:
        async with self._lock:
            loop = asyncio.get_running_loop()
            wait = self._last + self._interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last = loop.time()
            body = await self._api.call("GET", "/dev/outbox", auth=False)
            for m in body.get("messages", []) if isinstance(body, dict) else []:
                if isinstance(m, dict) and m.get("invite_id") and m.get("link"):
                    self._links.setdefault(str(m["invite_id"]), str(m["link"]))

    async def link_for(self, invite_id: str, within_s: float = LINK_TIMEOUT_S) -> str:
        async with asyncio.timeout(within_s):
            while invite_id not in self._links:
                await self.refresh()
        return self._links[invite_id]


def link_token(link: str) -> str:
    path = urllib.parse.urlsplit(link).path
    _, sep, token = path.rpartition("/join/")
    if not sep or not token or "/" in token:
        raise LoadTestError(f"the outbox link {link!r} does not end in /join/<token>")
    return urllib.parse.unquote(token)


async def preflight(api: Api, options: LoadOptions) -> tuple[str, list[dict[str, Any]]]:
    """Check the server, its outbox, the token and the case before any call.

    Returns the contact to invite and the staff ICE servers (for the inspectors' peers).
    """
    try:
        return await _preflight(api, options)
    except aiohttp.ClientError as e:
        raise LoadTestError(f"cannot reach the server at {options.base_url}: {e or type(e).__name__}") from None
    except TimeoutError:
        raise LoadTestError(f"the server at {options.base_url} did not answer within {API_TIMEOUT_S:g} s") from None


async def _preflight(api: Api, options: LoadOptions) -> tuple[str, list[dict[str, Any]]]:
    if options.link_from_outbox:
        try:
            await api.call("GET", "/dev/outbox", auth=False)
        except ApiError as e:
            if e.status == 404:
                raise LoadTestError(
                    "the server has no dev outbox (GET /api/v1/dev/outbox answered 404): claimant links are read "
                    "from it, so the server must run in demo mode (claimcam demo, or CLAIMCAM_DEMO=true) with "
                    "outbox delivery for the invite method") from None
            raise LoadTestError(f"the dev outbox is not available: {e}") from None
    try:
        case = await api.call("GET", f"/cases/{urllib.parse.quote(options.case_id, safe='')}")
    except ApiError as e:
        if e.status == 401:
            raise LoadTestError(f"the server refused the token ({e.code}); --token must be a staff JWT of this "
                                "server with full access to the case (demo mode: see GET /dev/demo)") from None
        if e.status == 404:
            raise LoadTestError(f"case {options.case_id!r} not found, or the token's user has no access to it"
                                ) from None
        raise LoadTestError(str(e)) from None
    access = case.get("access") if isinstance(case, dict) else None
    if not isinstance(case, dict) or access != "full" or not case.get("can_invite", True):
        raise LoadTestError(f"the token's user has {access or 'no'} access to case {options.case_id!r} and cannot "
                            "invite: the load test needs full access (it invites and joins as the inspector)")
    contacts = [c for c in case.get("contacts", []) if isinstance(c, dict)]
    if options.contact_id is not None:
        contact = next((c for c in contacts if c.get("id") == options.contact_id), None)
        if contact is None:
            raise LoadTestError(f"case {options.case_id!r} has no contact {options.contact_id!r}")
        if options.method not in contact.get("methods", []):
            raise LoadTestError(f"contact {options.contact_id!r} cannot be invited by {options.method}")
    else:
        contact = next((c for c in contacts if options.method in c.get("methods", [])), None)
        if contact is None:
            raise LoadTestError(f"case {options.case_id!r} has no contact reachable by {options.method}")
    return str(contact["id"]), await api.staff_ice_servers()


# ---- one call ----


@dataclass
class Shared:
    options: LoadOptions
    api: Api
    outbox: OutboxLinks
    contact_id: str
    staff_ice: list[dict[str, Any]]
    video: Clip
    audio: Clip


async def _until(deadline: float) -> None:
    delay = deadline - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)


async def _screenshots(
    rep: CallReport, inspector: CallSocket, start: float, seconds: float, count: int, phase: float
) -> None:
    for k in range(count):
        await _until(start + seconds * (k + phase) / count)
        if inspector.disconnected.is_set():
            return
        t = asyncio.get_running_loop().time()
        try:
            await inspector.request("screenshot", timeout_s=SCREENSHOT_TIMEOUT_S)
        except SignallingError as e:
            rep.errors.append(f"screenshot {k + 1}: {e}")
        else:
            rep.screenshot_latencies_s.append(asyncio.get_running_loop().time() - t)


def _record_error(what: str, e: SignallingError) -> str:
    if e.code == "media_unavailable":
        return f"{what}: media_unavailable: the server cannot record this call ({e.message})"
    return f"{what}: {e}"


async def run_call(shared: Shared, rep: CallReport, screenshot_phase: float = 0.5) -> None:
    """One whole call; everything it opened is closed before it returns, whatever happened.

    Screenshot k of K is taken at S·(k + screenshot_phase)/K into the run.
    """
    o = shared.options
    loop = asyncio.get_running_loop()
    claimant, inspector = CallSocket("claimant"), CallSocket("inspector")
    bots: list[RtcBot] = []
    c_bot: RtcBot | None = None
    i_bot: RtcBot | None = None
    start: float | None = None  # of the run window, once the video is up
    frames_at_start = 0
    background: list[asyncio.Task[Any]] = []
    try:
        rep.phase = "invite"
        rep.invite_id = await shared.api.create_invite(o.case_id, shared.contact_id, o.method, o.task_id)
        rep.phase = "link"
        token = link_token(await shared.outbox.link_for(rep.invite_id))
        claimant_ice = await shared.api.claimant_ice_servers(token)

        rep.phase = "set-up"
        t0 = loop.time()
        async with asyncio.timeout(o.setup_timeout_s):
            await claimant.connect(o.base_url, {"token": token})
            await claimant.request("join")
            c_bot = claimant_bot(rtc_configuration(claimant_ice), shared.video, shared.audio)
            bots.append(c_bot)
            await c_bot.negotiate(claimant.offer)
            await inspector.connect(o.base_url, {"jwt": o.token, "invite_id": rep.invite_id})
            await inspector.request("join")
            i_bot = inspector_bot(rtc_configuration(shared.staff_ice), shared.audio)
            bots.append(i_bot)
            rep.received = i_bot.received
            await i_bot.negotiate(inspector.offer)
            rep.phase = "first video frame"
            await i_bot.received["video"].first.wait()
        video = i_bot.received["video"]
        rep.setup_s = None if video.first_at is None else video.first_at - t0

        rep.phase = "running"
        start = rep.run_started = loop.time()
        frames_at_start = video.frames
        recording = False
        if o.record:
            try:
                await inspector.request("record_start")
                recording = True
            except SignallingError as e:
                rep.errors.append(_record_error("record_start", e))
        shots = loop.create_task(_screenshots(rep, inspector, start, o.seconds, o.screenshots, screenshot_phase))
        lost = [loop.create_task(s.disconnected.wait()) for s in (claimant, inspector)]
        background += [shots, *lost]
        done, _ = await asyncio.wait(lost, timeout=o.seconds, return_when=asyncio.FIRST_COMPLETED)
        rep.ran_s = loop.time() - start
        rep.video_fps = (video.frames - frames_at_start) / rep.ran_s if rep.ran_s > 0 else None
        for sock in (claimant, inspector):
            if sock.disconnected.is_set():
                why = f" (call_ended: {sock.call_ended})" if sock.call_ended is not None else ""
                rep.errors.append(f"the server disconnected the {sock.role} after {rep.ran_s:.1f} s{why}")
        if done:
            shots.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await shots
        if recording and not inspector.disconnected.is_set():
            t = loop.time()
            try:
                ack = await inspector.request("record_stop")
                rep.record_stop_latency_s = loop.time() - t
                rep.recorded = isinstance(ack.get("media"), dict)
                if not rep.recorded:
                    rep.errors.append("record_stop: the acknowledgement has no media (nothing was filed)")
            except SignallingError as e:
                rep.errors.append(_record_error("record_stop", e))

        rep.phase = "end"
        if not (claimant.disconnected.is_set() or inspector.disconnected.is_set()):
            await inspector.request("end_call")
            try:
                async with asyncio.timeout(5):
                    await claimant.disconnected.wait()
            except TimeoutError:
                rep.errors.append("end_call: the server did not disconnect the claimant within 5 s")
        rep.phase = "done"
    except SignallingError as e:
        rep.errors.append(f"{rep.phase}: {e}")
    except ApiError as e:
        rep.errors.append(f"{rep.phase}: {e}")
    except LoadTestError as e:
        rep.errors.append(f"{rep.phase}: {e}")
    except TimeoutError:
        if rep.phase == "link":
            rep.errors.append(f"link: the invite's message did not reach the dev outbox within {LINK_TIMEOUT_S:g} s "
                              f"(is {o.method} delivery set to the outbox?)")
        else:
            within = o.setup_timeout_s if rep.phase in ("set-up", "first video frame") else None
            rep.errors.append(f"{rep.phase}: timed out" + (f" ({within:g} s)" if within else ""))
    except aiohttp.ClientError as e:
        rep.errors.append(f"{rep.phase}: HTTP: {e or type(e).__name__}")
    except Exception as e:  # a bug or a surprise from a library: reported with the call, the others go on
        rep.errors.append(f"{rep.phase}: {type(e).__name__}: {e}")
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if start is not None and rep.video_fps is None and i_bot is not None:  # stopped during the run
            rep.ran_s = loop.time() - start
            if rep.ran_s > 0:
                rep.video_fps = (i_bot.received["video"].frames - frames_at_start) / rep.ran_s
        for bot, name in ((c_bot, "claimant"), (i_bot, "inspector")):
            if bot is not None:
                counted = bot.received["audio"].frames
                if name == "inspector":
                    rep.video_frames = bot.received["video"].frames
                    rep.video_keyframes = bot.received["video"].keyframes
                    rep.audio_frames = counted
                else:
                    rep.voice_frames = counted
                    rep.keyframe_requests = bot.sending[0].keyframe_requests
        await _teardown(shared, rep, bots, (claimant, inspector))
    if rep.phase == "done":
        if rep.video_fps == 0:
            rep.errors.append("no video reached the inspector during the run")
        if rep.audio_frames == 0:
            rep.errors.append("no audio from the claimant reached the inspector")
        if rep.voice_frames == 0:
            rep.errors.append("no audio from the inspector reached the claimant")


async def _teardown(shared: Shared, rep: CallReport, bots: list[RtcBot], sockets: tuple[CallSocket, ...]) -> None:
    """Close peers and sockets, then the invite: shielded, so a Ctrl-C during it still leaves nothing open."""

    async def close_all() -> None:
        for bot in bots:
            await bot.close()
        for sock in sockets:
            await sock.close()
        if rep.invite_id:
            try:
                await shared.api.close_invite(rep.invite_id)
            except ApiError as e:
                if e.status != 410:  # already closed
                    rep.errors.append(f"closing the invite: {e}")
            except (aiohttp.ClientError, TimeoutError) as e:
                rep.errors.append(f"closing the invite: {e or type(e).__name__}")

    task = asyncio.ensure_future(close_all())
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, TEARDOWN_TIMEOUT_S)
        raise


# ---- the run ----


class Progress:
    """A one-line progress bar on stderr (redrawn on a terminal, a line every few seconds otherwise)."""

    def __init__(self, reports: list[CallReport], seconds: float, out: TextIO, enabled: bool) -> None:
        self._reports = reports
        self._seconds = seconds
        self._out = out
        self._enabled = enabled
        self._tty = out.isatty()
        self._started = time.monotonic()

    def line(self) -> str:
        now = time.monotonic()
        done = 0.0
        for r in self._reports:
            if r.phase in ("end", "done") or r.errors:
                done += 1.0
            elif r.phase == "running" and r.run_started is not None:
                done += min(1.0, (now - r.run_started) / self._seconds)
        frac = done / len(self._reports)
        width = 30
        bar = "#" * round(frac * width) + "-" * (width - round(frac * width))
        phases: dict[str, int] = {}
        for r in self._reports:
            key = "failed" if r.errors else r.phase
            phases[key] = phases.get(key, 0) + 1
        counts = ", ".join(f"{v} {k}" for k, v in sorted(phases.items()))
        return f"[{bar}] {frac * 100:3.0f}%  {now - self._started:5.1f} s  {counts}"

    async def run(self) -> None:
        if not self._enabled:
            return
        period = 0.25 if self._tty else 5.0
        while True:
            await asyncio.sleep(period)
            self.draw()

    def draw(self, final: bool = False) -> None:
        if not self._enabled:
            return
        if self._tty:
            self._out.write("\r" + self.line() + ("\n" if final else ""))
        else:
            self._out.write(self.line() + "\n")
        self._out.flush()


async def run(options: LoadOptions, err: TextIO = sys.stderr) -> LoadReport:
    """Run the whole load test. Raises LoadTestError when it cannot start; partial results on Ctrl-C."""
    options.check()
    reports = [CallReport(i + 1) for i in range(options.calls)]
    report = LoadReport(options, reports)
    timeout = aiohttp.ClientTimeout(total=API_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        api = Api(options.base_url, options.token, session)
        contact_id, staff_ice = await preflight(api, options)
        try:
            video = await asyncio.to_thread(_camera_clip, options)
            audio = await asyncio.to_thread(tone_clip)
        except ClipError as e:
            raise LoadTestError(str(e)) from None
        report.camera = video.describe() + (" (from the file)" if options.video_file else " (pre-encoded once)")
        report.microphone = audio.describe() + " (pre-encoded once)"
        install_passthrough()
        shared = Shared(options, api, OutboxLinks(api), contact_id, staff_ice, video, audio)
        progress = Progress(reports, options.seconds, err, options.progress)
        budget = API_TIMEOUT_S * 2 + LINK_TIMEOUT_S + options.setup_timeout_s + options.seconds
        budget += SCREENSHOT_TIMEOUT_S + API_TIMEOUT_S + 5 + TEARDOWN_TIMEOUT_S
        started, cpu0 = time.monotonic(), time.process_time()
        drawer = asyncio.ensure_future(progress.run())
        calls = [asyncio.ensure_future(run_call(shared, r)) for r in reports]
        stop_on_sigterm(asyncio.current_task())
        try:
            _, pending = await asyncio.wait(calls, timeout=budget)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for r in reports:
                if r.phase != "done" and not r.errors:
                    r.errors.append(f"{r.phase}: the call did not finish within the run's limit of {budget:.0f} s")
        except asyncio.CancelledError:
            report.interrupted = True
            for task in calls:
                task.cancel()
            await asyncio.gather(*calls, return_exceptions=True)
            for r in reports:
                if r.phase != "done" and not r.errors:
                    r.errors.append(f"{r.phase}: interrupted")
            raise
        finally:
            forget_sigterm()
            drawer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drawer
            progress.draw(final=True)
            report.wall_s = time.monotonic() - started
            report.cpu_s = time.process_time() - cpu0
            _finish(report, err)
    return report


def _camera_clip(options: LoadOptions) -> Clip:
    if options.video_file:
        return video_file_clip(options.video_file)
    width, height = options.size
    return pattern_clip(width, height, fps=options.fps)


def _finish(report: LoadReport, err: TextIO) -> None:
    """Print the report and write the JSON (also for an interrupted run)."""
    print(format_report(report), flush=True)
    write_json("claimcam loadtest", report.options.json_path, report.as_json(), err)


# ---- command line ----


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 640x480") from None
    if w % 2 or h % 2 or not (16 <= w <= 3840 and 16 <= h <= 2160):
        raise argparse.ArgumentTypeError("the size must be even numbers between 16x16 and 3840x2160")
    return w, h


DESCRIPTION = (
    "Run concurrent headless calls (claimant and inspector bots) against a claimcam server in demo mode and "
    "measure set-up time, frames, screenshot latency and errors. Exit code: 0 all calls ok, 1 a call failed, "
    "2 the run could not start, 130 Ctrl-C, 143 SIGTERM."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8080")
    p.add_argument("--token", required=True, help="staff JWT with full access to the case (demo mode: GET /dev/demo)")
    p.add_argument("--case", required=True, dest="case_id", help="case to invite in, e.g. demo-case")
    p.add_argument("--calls", type=int, required=True, help=f"concurrent calls, 1..{MAX_CALLS}")
    p.add_argument("--seconds", type=float, required=True, help="how long each call runs once its video is up")
    p.add_argument("--screenshots", type=int, default=0, help="screenshots per call, spread over the run")
    p.add_argument("--record", action="store_true", help="record each call (record_start, then record_stop)")
    p.add_argument("--json", dest="json_path", help="also write the results as JSON to this file")
    p.add_argument("--contact", dest="contact_id", help="contact to invite (default: the first one the method reaches)")
    p.add_argument("--method", choices=("sms", "email"), default="sms", help="invite method (default sms)")
    p.add_argument("--task", dest="task_id", help="task of the invites (default: none, captures go to the case)")
    p.add_argument("--link-from-outbox", action=argparse.BooleanOptionalAction, default=True,
                   help="read claimant links from GET /api/v1/dev/outbox (demo mode; the only source so far)")
    p.add_argument("--ice-host-addresses", default="",
                   help="comma-separated addresses the bots gather ICE candidates on, e.g. 127.0.0.1 "
                        "(default: every interface but loopback)")
    p.add_argument("--video", dest="video_file", help="send this file's VP8 or H.264 video instead of the pattern")
    p.add_argument("--size", type=parse_size, default=(640, 480), help="size of the synthetic camera (default 640x480)")
    p.add_argument("--fps", type=int, default=30, help="frame rate of the synthetic camera (default 30)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar on stderr")


def options_from(args: argparse.Namespace) -> LoadOptions:
    addresses = tuple(a.strip() for a in str(args.ice_host_addresses).split(",") if a.strip())
    return LoadOptions(
        url=args.url, token=args.token, case_id=args.case_id, calls=args.calls, seconds=args.seconds,
        screenshots=args.screenshots, record=args.record, json_path=args.json_path, contact_id=args.contact_id,
        method=args.method, task_id=args.task_id, link_from_outbox=args.link_from_outbox,
        ice_host_addresses=addresses, video_file=args.video_file, size=args.size, fps=args.fps,
        progress=args.progress,
    )


def command(args: argparse.Namespace) -> int:
    """`claimcam loadtest`: 0 when every call succeeded, 1 when one failed, 2 when the run could not start."""
    options = options_from(args)

    async def start() -> LoadReport:
        options.check()
        try:
            install_host_addresses(options.ice_host_addresses)
        except ValueError as e:
            raise LoadTestError(f"--ice-host-addresses: {e}") from None
        return await run(options)

    return run_command(
        "claimcam loadtest", start,
        lambda r: f"{len(r.failed)} of {len(r.calls)} call(s) failed" if r.failed else None,
        (LoadTestError,), cleaned_up="every peer and socket was closed",
    )
