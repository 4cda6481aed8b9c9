"""`claimcam bench signalling`: how fast the Socket.IO hub relays cursor moves and chat, on one node and on two.

Each scenario runs on fresh processes this command starts on 127.0.0.1 and stops by PID:

- `one_node`: `claimcam serve` in demo mode (SQLite, the in-memory Socket.IO manager);
- `two_nodes`: two such nodes sharing one SQLite file and a redis-server, the inspectors on node 1 and
  the claimants on node 2, so every message crosses Redis;
- `raw_ws`: `bench/wsrelay.py`, a bare aiohttp websocket relay with the same rooms, as the limit.

The load, per call: the inspector moves his cursor at 30 Hz and the claimant receives the moves; every
2 s the claimant sends the inspector a burst of 5 chat messages. Each message carries a unique key
(the cursor's x, the chat's text), so its receiver, in this same process, matches it to its send time
on `time.perf_counter`. After a warm-up, only the messages due within the measured window count.
A message the server refused or dropped by design (its rate limits) is counted as dropped; one it
accepted that never arrived is lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

import aiohttp

from bench.loadtest import (
    Api,
    ApiError,
    LoadOptions,
    LoadTestError,
    OutboxLinks,
    link_token,
    percentile,
    preflight,
)
from bench.peers import CallSocket, SignallingError
from bench.running import forget_sigterm, run_command, stop_on_sigterm, write_json
from bench.services import START_TIMEOUT_S, Child, Server, ServiceError, Services, find_binary
from signalling import events as ev

MAX_CALLS = 100
MAX_SECONDS = 600.0
CURSOR_HZ = 30.0
CHAT_EVERY_S = 2.0
CHAT_BURST = 5
WARMUP_S = 1.0
DRAIN_S = 2.0  # after the window, how long messages still in flight may take to arrive
DRAIN_STEP_S = 0.02
SETUP_TIMEOUT_S = 60.0  # the calls of one scenario, once its servers answer
LAG_STEP_S = 0.005
# Up to 1 ms of the lag measured is the event loop's timer granularity (epoll waits in whole milliseconds);
# above this the generator itself was slow to read what arrived, and says so.
LAG_WARN_MS = 3.0
X_SCALE = 100_000  # the n-th move of a call has x = n / X_SCALE: unique, and within 0..1 for 600 s at 30 Hz
MAX_MESSAGE_BYTES = 64 * 1024

DEMO_CASE = "demo-case"
DEMO_INSPECTOR = "u-inspector"
SECRET = "claimcam-bench-signalling"  # the nodes of two_nodes must share it: links and staff tokens derive from it

TARGET_CURSOR_P99_MS = 15.0
TARGET_REDIS_ADDED_MS = 1.0

ONE_NODE, TWO_NODES, RAW_WS = "one_node", "two_nodes", "raw_ws"
SCENARIOS = (ONE_NODE, TWO_NODES, RAW_WS)
TITLES = {ONE_NODE: "socket.io, 1 node", TWO_NODES: "socket.io, 2 nodes + Redis", RAW_WS: "raw aiohttp websocket"}

EXIT_OK, EXIT_FAILED, EXIT_CANNOT_START = 0, 1, 2

Say = Callable[[str], None]


class BenchError(Exception):
    """The benchmark cannot start: bad options or a missing server binary."""


@dataclass(frozen=True, slots=True)
class BenchOptions:
    calls: int
    seconds: float
    json_path: str | None = None
    scenarios: tuple[str, ...] = SCENARIOS
    cursor_hz: float = CURSOR_HZ
    chat_every_s: float = CHAT_EVERY_S
    chat_burst: int = CHAT_BURST
    warmup_s: float = WARMUP_S

    def check(self) -> None:
        if not 1 <= self.calls <= MAX_CALLS:
            raise BenchError(f"--calls must be 1..{MAX_CALLS}")
        if not 1 <= self.seconds <= MAX_SECONDS:
            raise BenchError(f"--seconds must be 1..{MAX_SECONDS:g}")
        unknown = [s for s in self.scenarios if s not in SCENARIOS]
        if unknown or not self.scenarios:
            raise BenchError(f"--scenarios takes a comma-separated subset of {','.join(SCENARIOS)}")
        if TWO_NODES in self.scenarios:
            try:
                find_binary("redis-server")
            except ServiceError as e:
                raise BenchError(f"the two_nodes scenario needs redis-server: {e}") from None


# ---- what happened to each message ----

Key = float | str


@dataclass
class Tally:
    """One kind of message in one call: each one's send time, until it arrives or the server drops it."""

    pending: dict[Key, tuple[float, bool]] = field(default_factory=dict)  # key -> (perf_counter at send, counted)
    latencies_s: list[float] = field(default_factory=list)
    sent: int = 0
    delivered: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # by the server's reason
    unexpected: int = 0  # arrived but never sent, or twice

    def sending(self, key: Key, counted: bool) -> None:
        self.pending[key] = (time.perf_counter(), counted)
        if counted:
            self.sent += 1

    def arrived(self, key: Key, at: float) -> None:
        entry = self.pending.pop(key, None)
        if entry is None:
            self.unexpected += 1
            return
        sent_at, counted = entry
        if counted:
            self.delivered += 1
            self.latencies_s.append(at - sent_at)

    def refused(self, key: Key, reason: str) -> None:
        entry = self.pending.pop(key, None)
        if entry is not None and entry[1]:
            self.dropped[reason] = self.dropped.get(reason, 0) + 1

    @property
    def lost(self) -> int:
        return sum(1 for _, counted in self.pending.values() if counted)


@dataclass
class Traffic:
    cursor: Tally = field(default_factory=Tally)
    chat: Tally = field(default_factory=Tally)
    errors: list[str] = field(default_factory=list)


def note_arrival(tally: Tally, data: Any, key_field: str) -> None:
    at = time.perf_counter()
    key = data.get(key_field) if isinstance(data, dict) else None
    if isinstance(key, float | str):
        tally.arrived(key, at)
    else:
        tally.unexpected += 1


# ---- one call, through the hub or through the raw relay ----


class CallLink(Protocol):
    """The inspector and the claimant of one call: cursor moves go to the claimant, chat to the inspector."""

    traffic: Traffic

    async def move_cursor(self, x: float, y: float) -> None: ...

    async def send_chat(self, text: str) -> None: ...

    def broken(self) -> str | None: ...

    async def close(self) -> None: ...


def _refusal(reply: Any) -> str | None:
    """None when an acknowledgement says the message went out to the room, else why not."""
    if not isinstance(reply, dict) or not reply.get("ok"):
        error = reply.get("error") if isinstance(reply, dict) else None
        return str(error.get("code", "error")) if isinstance(error, dict) else "invalid_ack"
    if reply.get("relayed") is False:
        return "throttled"  # a move within 1/30 s of the last one the server let through
    return None


class SocketIoCall:
    """One call through the hub: the inspector's and the claimant's `/call` sockets, both joined."""

    def __init__(self) -> None:
        self.traffic = Traffic()
        self.inspector = CallSocket("inspector")
        self.claimant = CallSocket("claimant")
        self.claimant.sio.on(ev.CURSOR, self._on_cursor, namespace=ev.CALL_NAMESPACE)
        self.inspector.sio.on(ev.CHAT, self._on_chat, namespace=ev.CALL_NAMESPACE)

    async def _on_cursor(self, data: Any = None) -> None:
        note_arrival(self.traffic.cursor, data, "x")

    async def _on_chat(self, data: Any = None) -> None:
        note_arrival(self.traffic.chat, data, "text")

    async def open(self, inspector_url: str, claimant_url: str, link: str, staff_token: str, invite_id: str) -> None:
        await self.claimant.connect(claimant_url, {"token": link})
        await self.claimant.request("join")
        await self.inspector.connect(inspector_url, {"jwt": staff_token, "invite_id": invite_id})
        await self.inspector.request("join")

    async def move_cursor(self, x: float, y: float) -> None:
        def ack(reply: Any = None) -> None:
            reason = _refusal(reply)
            if reason is not None:
                self.traffic.cursor.refused(x, reason)

        payload = {"action": "move", "x": x, "y": y}
        await self.inspector.sio.emit(ev.CURSOR, payload, namespace=ev.CALL_NAMESPACE, callback=ack)

    async def send_chat(self, text: str) -> None:
        def ack(reply: Any = None) -> None:
            reason = _refusal(reply)
            if reason is not None:
                self.traffic.chat.refused(text, reason)

        await self.claimant.sio.emit(ev.CHAT, {"text": text}, namespace=ev.CALL_NAMESPACE, callback=ack)

    def broken(self) -> str | None:
        for sock in (self.inspector, self.claimant):
            if sock.disconnected.is_set():
                return f"the server disconnected the {sock.role}"
        return None

    async def close(self) -> None:
        await self.inspector.close()
        await self.claimant.close()


class RawWsCall:
    """One call through the raw relay: two websockets in the call's room, speaking plain JSON text."""

    def __init__(self, inspector: aiohttp.ClientWebSocketResponse, claimant: aiohttp.ClientWebSocketResponse) -> None:
        self.traffic = Traffic()
        self.inspector = inspector
        self.claimant = claimant
        loop = asyncio.get_running_loop()
        self._readers = [
            loop.create_task(self._read(claimant, self.traffic.cursor, "x")),
            loop.create_task(self._read(inspector, self.traffic.chat, "text")),
        ]

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, relay_url: str, room: str) -> RawWsCall:
        url = f"{relay_url}/ws/{room}"
        inspector = await http.ws_connect(url, max_msg_size=MAX_MESSAGE_BYTES)
        try:
            claimant = await http.ws_connect(url, max_msg_size=MAX_MESSAGE_BYTES)
        except BaseException:
            await inspector.close()
            raise
        return cls(inspector, claimant)

    @staticmethod
    async def _read(ws: aiohttp.ClientWebSocketResponse, tally: Tally, key_field: str) -> None:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                note_arrival(tally, json.loads(msg.data), key_field)

    async def move_cursor(self, x: float, y: float) -> None:
        await self.inspector.send_str(json.dumps({"action": "move", "x": x, "y": y}))

    async def send_chat(self, text: str) -> None:
        await self.claimant.send_str(json.dumps({"text": text}))

    def broken(self) -> str | None:
        for ws, role in ((self.inspector, "inspector"), (self.claimant, "claimant")):
            if ws.closed:
                return f"the relay closed the {role}'s websocket"
        return None

    async def close(self) -> None:
        for ws in (self.inspector, self.claimant):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5)
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


# ---- the load ----


@dataclass(frozen=True, slots=True)
class Plan:
    """Event-loop times: the load starts, the measured window opens, and everything stops."""

    start: float
    window_from: float
    end: float

    def counts(self, due: float) -> bool:
        return self.window_from <= due < self.end


async def _until(when: float) -> None:
    delay = when - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)


async def _cursor_moves(link: CallLink, plan: Plan, offset_s: float, hz: float) -> None:
    n = 0
    try:
        while (due := plan.start + offset_s + n / hz) < plan.end:
            await _until(due)
            if (why := link.broken()) is not None:
                link.traffic.errors.append(why)
                return
            x = n / X_SCALE
            n += 1
            link.traffic.cursor.sending(x, plan.counts(due))
            await link.move_cursor(x, 0.5)
    except Exception as e:  # a lost socket, say: reported with its call, the others go on
        link.traffic.errors.append(f"cursor: {type(e).__name__}: {e}")


async def _chat_bursts(link: CallLink, plan: Plan, offset_s: float, every_s: float, burst: int) -> None:
    j = 0
    try:
        while (due := plan.start + offset_s + j * every_s) < plan.end:
            await _until(due)
            if link.broken() is not None:
                return  # the cursor loop reports it
            for m in range(burst):
                text = f"burst {j} message {m}"
                link.traffic.chat.sending(text, plan.counts(due))
                await link.send_chat(text)
            j += 1
    except Exception as e:
        link.traffic.errors.append(f"chat: {type(e).__name__}: {e}")


async def _loop_lag(plan: Plan, lags_s: list[float]) -> None:
    """How late this process's event loop wakes up: the generator's own share of every latency."""
    loop = asyncio.get_running_loop()
    while (t := loop.time()) < plan.end:
        await asyncio.sleep(LAG_STEP_S)
        if t >= plan.window_from:
            lags_s.append(max(0.0, loop.time() - t - LAG_STEP_S))


@dataclass
class CpuUse:
    servers_percent: dict[str, float] = field(default_factory=dict)  # of one core, per server process
    generator_percent: float | None = None
    errors: list[str] = field(default_factory=list)


async def _cpu_window(plan: Plan, servers: Sequence[Child]) -> CpuUse:
    loop = asyncio.get_running_loop()
    use = CpuUse()
    await _until(plan.window_from)
    wall0, own0 = loop.time(), time.process_time()
    try:
        before = {c.name: c.cpu_seconds() for c in servers}
        await _until(plan.end)
        after = {c.name: c.cpu_seconds() for c in servers}
    except OSError as e:
        gone = [f"{c.name} exited during the run:\n{c.log_tail()}" for c in servers if not c.running]
        use.errors += gone or [f"cannot read the servers' CPU time: {e}"]
        return use
    wall = loop.time() - wall0
    use.servers_percent = {name: 100 * (after[name] - before[name]) / wall for name in before}
    use.generator_percent = 100 * (time.process_time() - own0) / wall
    return use


@dataclass
class Measured:
    cpu: CpuUse
    lags_s: list[float]


async def drive(links: Sequence[CallLink], servers: Sequence[Child], options: BenchOptions) -> Measured:
    """Run the load over every call, then give messages in flight `DRAIN_S` to arrive."""
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.1
    plan = Plan(start, start + options.warmup_s, start + options.warmup_s + options.seconds)
    n = len(links)
    lags: list[float] = []
    async with asyncio.TaskGroup() as group:
        cpu = group.create_task(_cpu_window(plan, servers))
        group.create_task(_loop_lag(plan, lags))
        for i, link in enumerate(links):
            # Spread over each period: real calls are not in lockstep.
            group.create_task(_cursor_moves(link, plan, i / (n * options.cursor_hz), options.cursor_hz))
            offset = i * options.chat_every_s / n
            group.create_task(_chat_bursts(link, plan, offset, options.chat_every_s, options.chat_burst))
    for _ in range(round(DRAIN_S / DRAIN_STEP_S)):
        if not any(link.traffic.cursor.pending or link.traffic.chat.pending for link in links):
            break
        await asyncio.sleep(DRAIN_STEP_S)
    return Measured(cpu.result(), lags)


# ---- results ----


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


@dataclass
class KindStats:
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    unexpected: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    worst_call_p99_ms: float | None = None

    @classmethod
    def of(cls, tallies: Sequence[Tally]) -> KindStats:
        latencies = [v for t in tallies for v in t.latencies_s]
        dropped: dict[str, int] = {}
        for t in tallies:
            for reason, count in t.dropped.items():
                dropped[reason] = dropped.get(reason, 0) + count
        per_call = [p for t in tallies if (p := percentile(t.latencies_s, 99)) is not None]
        return cls(
            sent=sum(t.sent for t in tallies), delivered=sum(t.delivered for t in tallies),
            lost=sum(t.lost for t in tallies), dropped=dropped, unexpected=sum(t.unexpected for t in tallies),
            p50_ms=_ms(percentile(latencies, 50)), p99_ms=_ms(percentile(latencies, 99)),
            max_ms=_ms(max(latencies, default=None)), worst_call_p99_ms=_ms(max(per_call, default=None)),
        )

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


@dataclass
class ScenarioResult:
    name: str
    seconds: float
    cursor: KindStats = field(default_factory=KindStats)
    chat: KindStats = field(default_factory=KindStats)
    cpu: CpuUse = field(default_factory=CpuUse)
    lag_p99_ms: float | None = None
    lag_max_ms: float | None = None
    setup_s: float | None = None
    errors: list[str] = field(default_factory=list)
    done: bool = False

    @property
    def title(self) -> str:
        return TITLES[self.name]

    @property
    def delivered(self) -> int:
        return self.cursor.delivered + self.chat.delivered

    @property
    def lost(self) -> int:
        return self.cursor.lost + self.chat.lost

    @property
    def msgs_per_s(self) -> float:
        return self.delivered / self.seconds

    @property
    def server_cpu_percent(self) -> float | None:
        return sum(self.cpu.servers_percent.values()) if self.cpu.servers_percent else None

    @property
    def cpu_ms_per_msg(self) -> float | None:
        total = self.server_cpu_percent
        if total is None or not self.delivered:
            return None
        return total / 100 * self.seconds / self.delivered * 1000

    @property
    def ok(self) -> bool:
        return self.done and not self.errors and not self.lost and self.cursor.delivered > 0

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"title": self.title, "ok": self.ok}
        for kind, s in (("cursor", self.cursor), ("chat", self.chat)):
            out.update({
                f"{kind}_p50_ms": s.p50_ms, f"{kind}_p99_ms": s.p99_ms, f"{kind}_max_ms": s.max_ms,
                f"{kind}_worst_call_p99_ms": s.worst_call_p99_ms, f"{kind}_sent": s.sent,
                f"{kind}_delivered": s.delivered, f"{kind}_lost": s.lost, f"{kind}_dropped": s.dropped_total,
                f"{kind}_dropped_reasons": dict(sorted(s.dropped.items())), f"{kind}_unexpected": s.unexpected,
            })
        cpu = self.server_cpu_percent
        per_msg = self.cpu_ms_per_msg
        out.update({
            "delivered": self.delivered, "lost": self.lost,
            "msgs_per_s": round(self.msgs_per_s, 1),
            "server_cpu_percent": None if cpu is None else round(cpu, 1),
            "server_processes_cpu_percent": {k: round(v, 1) for k, v in self.cpu.servers_percent.items()},
            "server_cpu_ms_per_msg": None if per_msg is None else round(per_msg, 4),
            "generator_cpu_percent": None if self.cpu.generator_percent is None
            else round(self.cpu.generator_percent, 1),
            "generator_lag_p99_ms": self.lag_p99_ms, "generator_lag_max_ms": self.lag_max_ms,
            "setup_s": None if self.setup_s is None else round(self.setup_s, 2),
            "errors": self.errors,
        })
        return out


@dataclass
class BenchReport:
    options: BenchOptions
    scenarios: list[ScenarioResult] = field(default_factory=list)
    interrupted: bool = False

    def get(self, name: str) -> ScenarioResult | None:
        return next((s for s in self.scenarios if s.name == name and s.done), None)

    def _p99(self, name: str) -> float | None:
        s = self.get(name)
        return None if s is None else s.cursor.p99_ms

    @property
    def ratio_to_raw_ws(self) -> float | None:
        one, raw = self._p99(ONE_NODE), self._p99(RAW_WS)
        return None if one is None or not raw else round(one / raw, 2)

    @property
    def redis_added_p99_ms(self) -> float | None:
        one, two = self._p99(ONE_NODE), self._p99(TWO_NODES)
        return None if one is None or two is None else round(two - one, 3)

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(s.ok for s in self.scenarios)

    def targets(self) -> dict[str, Any]:
        worst = [w for n in (ONE_NODE, TWO_NODES) if (s := self.get(n)) and (w := s.cursor.worst_call_p99_ms)]
        added = self.redis_added_p99_ms
        return {
            "cursor_worst_call_p99_ms": TARGET_CURSOR_P99_MS,
            "cursor_met": None if not worst else max(worst) <= TARGET_CURSOR_P99_MS,
            "redis_added_p99_ms": TARGET_REDIS_ADDED_MS,
            "redis_added_met": None if added is None else added <= TARGET_REDIS_ADDED_MS,
        }

    def as_json(self) -> dict[str, Any]:
        o = self.options
        return {
            "benchmark": "signalling", "calls": o.calls, "seconds": o.seconds, "cursor_hz": o.cursor_hz,
            "chat_every_s": o.chat_every_s, "chat_burst": o.chat_burst, "warmup_s": o.warmup_s,
            "cpus": os.cpu_count(), "scenarios": {s.name: s.as_json() for s in self.scenarios},
            "ratio_to_raw_ws": self.ratio_to_raw_ws, "redis_added_p99_ms": self.redis_added_p99_ms,
            "targets": self.targets(), "interrupted": self.interrupted, "ok": self.ok,
        }


def _num(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def format_report(report: BenchReport) -> str:
    o = report.options
    lines = [
        f"claimcam bench signalling: {o.calls} call(s), {o.seconds:g} s measured after {o.warmup_s:g} s of warm-up; "
        f"per call cursor moves at {o.cursor_hz:g} Hz (inspector -> claimant) and {o.chat_burst} chat messages "
        f"every {o.chat_every_s:g} s (claimant -> inspector); {os.cpu_count()} CPU(s)",
        "",
        "| scenario | cursor p50 ms | cursor p99 ms | cursor max ms | worst call p99 ms | chat p50 ms | chat p99 ms "
        "| chat max ms | msgs/s | server CPU % | lost |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in report.scenarios:
        c, h = s.cursor, s.chat
        lines.append(
            f"| {s.title}{'' if s.done else ' (not run to the end)'} | {_num(c.p50_ms)} | {_num(c.p99_ms)} "
            f"| {_num(c.max_ms)} | {_num(c.worst_call_p99_ms)} | {_num(h.p50_ms)} | {_num(h.p99_ms)} "
            f"| {_num(h.max_ms)} | {s.msgs_per_s:.0f} | {_num(s.server_cpu_percent, 0)} | {s.lost} |"
        )
    lines.append("")
    for s in report.scenarios:
        cpu = ", ".join(f"{k} {v:.0f} %" for k, v in s.cpu.servers_percent.items()) or "-"
        dropped = "; ".join(
            f"{kind} {', '.join(f'{n} {r}' for r, n in sorted(k.dropped.items()))}"
            for kind, k in (("cursor", s.cursor), ("chat", s.chat)) if k.dropped
        ) or "none"
        gen = s.cpu.generator_percent
        lines += [
            f"{s.title}: delivered {s.cursor.delivered}/{s.cursor.sent} cursor moves and {s.chat.delivered}/"
            f"{s.chat.sent} chat messages; dropped by the server's rate limits: {dropped}",
            f"  server CPU (% of one core): {cpu}; {_num(s.cpu_ms_per_msg, 3)} ms CPU per delivered message",
            f"  load generator: {_num(gen, 0)} % CPU, event-loop lag p99 {_num(s.lag_p99_ms, 2)} ms, "
            f"max {_num(s.lag_max_ms, 2)} ms" + _lag_warning(s),
        ]
        lines += [f"  error: {e}" for e in s.errors]
    ratio, added = report.ratio_to_raw_ws, report.redis_added_p99_ms
    t = report.targets()
    lines += [
        "",
        f"socket.io 1 node cursor p99 / raw websocket p99: {'-' if ratio is None else f'{ratio:.2f}x'}",
        f"what Redis adds (2 nodes p99 - 1 node p99): {'-' if added is None else f'{added:+.2f} ms'}",
        f"target cursor p99 <= {TARGET_CURSOR_P99_MS:g} ms in every call: {_met(t['cursor_met'])}; "
        f"Redis adds <= {TARGET_REDIS_ADDED_MS:g} ms: {_met(t['redis_added_met'])} (reported, not enforced)",
    ]
    if report.interrupted:
        lines.append("(interrupted)")
    return "\n".join(lines)


def _lag_warning(s: ScenarioResult) -> str:
    if s.lag_p99_ms is not None and s.lag_p99_ms > LAG_WARN_MS:
        return " (the generator lagged: its delays are part of these latencies)"
    return ""


def _met(v: bool | None) -> str:
    return "-" if v is None else "met" if v else "NOT met"


# ---- scenarios ----


@dataclass(frozen=True, slots=True)
class Setup:
    """A scenario's servers are up and its calls joined: what the load runs on."""

    links: list[CallLink]
    servers: list[Child]


async def _inspector_token(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(f"{url}/dev/demo") as r:
        r.raise_for_status()
        body = await r.json()
    token = next((u.get("token") for u in body.get("users", []) if u.get("id") == DEMO_INSPECTOR), None)
    if not isinstance(token, str):
        raise LoadTestError(f"GET {url}/dev/demo has no token of the demo inspector {DEMO_INSPECTOR!r}")
    return token


async def _socketio_calls(
    http: aiohttp.ClientSession, inspectors: Server, claimants: Server, count: int, stack: contextlib.AsyncExitStack
) -> list[CallLink]:
    """Invites through node `inspectors`' API, links from its dev outbox; each side joins on its own node."""
    token = await _inspector_token(http, inspectors.url)
    api = Api(inspectors.url, token, http)
    contact_id, _ = await preflight(api, LoadOptions(url=inspectors.url, token=token, case_id=DEMO_CASE,
                                                     calls=count, seconds=1))
    outbox = OutboxLinks(api)
    gate = asyncio.Semaphore(16)

    async def one() -> SocketIoCall:
        call = SocketIoCall()
        stack.push_async_callback(call.close)
        async with gate:
            invite_id = await api.create_invite(DEMO_CASE, contact_id, "sms", None)
            link = link_token(await outbox.link_for(invite_id))
            await call.open(inspectors.url, claimants.url, link, token, invite_id)
        return call

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one()) for _ in range(count)]
    return [t.result() for t in tasks]


def _node_settings(data_dir: Path, **more: str) -> dict[str, str]:
    return {"CLAIMCAM_DEMO": "true", "CLAIMCAM_SECRET": SECRET, "CLAIMCAM_DATA_DIR": str(data_dir), **more}


async def _one_node(services: Services, http: aiohttp.ClientSession, calls: int,
                    stack: contextlib.AsyncExitStack) -> Setup:
    node = await services.claimcam("node", _node_settings(services.base / "node"))
    return Setup(await _socketio_calls(http, node, node, calls, stack), [node.child])


async def _two_nodes(services: Services, http: aiohttp.ClientSession, calls: int,
                     stack: contextlib.AsyncExitStack) -> Setup:
    redis = await services.redis()
    # SQLite in WAL mode takes writers from several processes of one host (each change begins by
    # taking the write lock), so two nodes can share a file here; production uses PostgreSQL.
    shared = {"CLAIMCAM_DATABASE_URL": f"sqlite+aiosqlite:///{services.base / 'claimcam.db'}",
              "CLAIMCAM_REDIS_URL": redis.url}
    # One after the other: the first migrates and seeds, the second finds that done.
    node1 = await services.claimcam("node 1", _node_settings(services.base / "node1", **shared))
    node2 = await services.claimcam("node 2", _node_settings(services.base / "node2", **shared))
    links = await _socketio_calls(http, node1, node2, calls, stack)
    return Setup(links, [node1.child, node2.child, redis.child])


async def _raw_ws(services: Services, http: aiohttp.ClientSession, calls: int,
                  stack: contextlib.AsyncExitStack) -> Setup:
    relay = await services.relay()
    links: list[CallLink] = []
    for i in range(calls):
        call = await RawWsCall.open(http, relay.url, f"call-{i}")
        stack.push_async_callback(call.close)
        links.append(call)
    return Setup(links, [relay.child])


Starter = Callable[[Services, aiohttp.ClientSession, int, contextlib.AsyncExitStack], Awaitable[Setup]]
STARTERS: dict[str, Starter] = {ONE_NODE: _one_node, TWO_NODES: _two_nodes, RAW_WS: _raw_ws}


async def run_scenario(name: str, options: BenchOptions, base: Path, http: aiohttp.ClientSession,
                       result: ScenarioResult, say: Say) -> None:
    """Start the scenario's servers and calls, drive the load, and stop everything it started, in order."""
    say(f"{TITLES[name]}: starting")
    async with Services(base / name, http, say) as services, contextlib.AsyncExitStack() as stack:
        failures: list[Exception] = []
        try:
            setup, measured = await _set_up_and_drive(name, options, http, services, stack, result, say)
        except* (ServiceError, SignallingError, ApiError, LoadTestError, aiohttp.ClientError, TimeoutError) as group:
            failures += _leaves(group)
        if failures:
            result.errors += [_describe(e) for e in failures]
            return
        result.cursor = KindStats.of([link.traffic.cursor for link in setup.links])
        result.chat = KindStats.of([link.traffic.chat for link in setup.links])
        result.cpu = measured.cpu
        result.lag_p99_ms = _ms(percentile(measured.lags_s, 99))
        result.lag_max_ms = _ms(max(measured.lags_s, default=None))
        result.errors += measured.cpu.errors
        result.errors += [f"call {i + 1}: {e}" for i, link in enumerate(setup.links) for e in link.traffic.errors]
        result.done = True


async def _set_up_and_drive(name: str, options: BenchOptions, http: aiohttp.ClientSession, services: Services,
                            stack: contextlib.AsyncExitStack, result: ScenarioResult, say: Say
                            ) -> tuple[Setup, Measured]:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    async with asyncio.timeout(SETUP_TIMEOUT_S + 3 * START_TIMEOUT_S):
        setup = await STARTERS[name](services, http, options.calls, stack)
    result.setup_s = loop.time() - t0
    say(f"{TITLES[name]}: {options.calls} call(s) joined in {result.setup_s:.1f} s; measuring {options.seconds:g} s")
    return setup, await drive(setup.links, setup.servers, options)


def _leaves(group: BaseExceptionGroup[Exception]) -> list[Exception]:
    out: list[Exception] = []
    for e in group.exceptions:
        out += _leaves(e) if isinstance(e, BaseExceptionGroup) else [e]
    return out


def _describe(e: Exception) -> str:
    if isinstance(e, TimeoutError):
        return "setting up the calls timed out"
    if isinstance(e, ServiceError | LoadTestError):
        return str(e)
    return f"{type(e).__name__}: {e}"


async def run(options: BenchOptions, err: TextIO = sys.stderr) -> BenchReport:
    """Every scenario in turn; the report is printed (and written) also when interrupted."""
    options.check()
    report = BenchReport(options)

    def say(text: str) -> None:
        print(f"  {text}", file=err, flush=True)

    base = Path(tempfile.mkdtemp(prefix="claimcam-bench-"))
    stop_on_sigterm(asyncio.current_task())
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            for name in options.scenarios:
                result = ScenarioResult(name, options.seconds)
                report.scenarios.append(result)
                await run_scenario(name, options, base, http, result, say)
    except asyncio.CancelledError:
        report.interrupted = True
        raise
    finally:
        forget_sigterm()
        shutil.rmtree(base, ignore_errors=True)
        _finish(report, err)
    return report


def _finish(report: BenchReport, err: TextIO) -> None:
    print(format_report(report), flush=True)
    write_json("claimcam bench signalling", report.options.json_path, report.as_json(), err)


# ---- command line ----

DESCRIPTION = (
    "Measure cursor and chat delivery latency (p50/p99/max), messages/s and server CPU through the Socket.IO "
    "hub on one node and on two nodes over Redis, beside a raw aiohttp websocket relay as the limit. Starts "
    "every server itself on 127.0.0.1 (redis-server must be installed) and stops them when done. Exit code: "
    "0 every message arrived, 1 a scenario failed or lost messages, 2 the run could not start, 130 Ctrl-C, "
    "143 SIGTERM."
)


def _scenarios(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calls", type=int, default=8, help=f"concurrent calls, 1..{MAX_CALLS} (default 8)")
    p.add_argument("--seconds", type=float, default=20.0,
                   help=f"measured seconds per scenario, 1..{MAX_SECONDS:g} (default 20)")
    p.add_argument("--json", dest="json_path", help="also write the numbers as JSON to this file")
    p.add_argument("--scenarios", type=_scenarios, default=SCENARIOS,
                   help=f"comma-separated subset of {','.join(SCENARIOS)} (default: all)")


def options_from(args: argparse.Namespace) -> BenchOptions:
    return BenchOptions(calls=args.calls, seconds=args.seconds, json_path=args.json_path, scenarios=args.scenarios)


def command(args: argparse.Namespace) -> int:
    options = options_from(args)

    async def start() -> BenchReport:
        options.check()
        return await run(options)

    return run_command("claimcam bench signalling", start,
                       lambda r: None if r.ok else "a scenario failed or lost messages", (BenchError,))
