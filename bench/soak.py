"""`claimcam bench soak`: calls for minutes on one server; do its resources return to where they were?

One `claimcam serve` (demo mode, passthrough, started and stopped by this command like `bench calls`)
runs cycles of N concurrent recorded calls with screenshots, each cycle new invites, new peers, new
recordings, until the time is up. Before the first cycle (after a short warm-up call, so codecs and
thread pools are loaded) and after the last, the server's own gauges are read from /metrics: peer
connections, calls with media, asyncio tasks, open file descriptors, threads and resident memory,
plus the same after every cycle. Peer connections and calls must be back to 0; tasks, descriptors
and threads back within a few of the baseline; memory is reported as growth from the baseline and
as the slope over the cycles (a leak grows every cycle; allocator high-water marks do not).
`--quiet-seconds` shortens the pauses for a quick check, with the server pinging its sockets sooner.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from bench.calls import CASE_ID, MB, demo_token, server_settings
from bench.clips import ClipError, pattern_clip, tone_clip
from bench.loadtest import (
    API_TIMEOUT_S,
    Api,
    ApiError,
    CallReport,
    LoadOptions,
    LoadTestError,
    OutboxLinks,
    Shared,
    parse_size,
    preflight,
    run_call,
)
from bench.peers import install_passthrough
from bench.running import forget_sigterm, run_command, stop_on_sigterm, write_json
from bench.services import ServiceError, Services
from media.ice import install_host_addresses

GAUGES = ("peer_connections", "calls_with_media", "asyncio_tasks", "open_fds", "threads", "rss_bytes")
SETTLE_S = 5.0  # after a cycle's calls end: peers close, recordings are filed
# Before the baseline and the last sample: a closed Engine.IO socket's ping task ends only at its next
# ping, so the server pings this much sooner than the quiet ends (25 s, the default interval, for 30 s).
QUIET_S = 30.0
WARMUP_CALL_S = 3.0
PING_MARGIN_S = 5.0
MIN_PING_INTERVAL_S = 1.0
TOLERANCE = {"asyncio_tasks": 5, "open_fds": 5, "threads": 4}
MAX_CALLS, MAX_MINUTES, MAX_CYCLES = 50, 120.0, 10_000

DESCRIPTION = __doc__.split("\n\n")[0] if __doc__ else ""


@dataclass(frozen=True, slots=True)
class SoakOptions:
    calls: int = 10
    minutes: float = 10.0
    cycle_seconds: float = 60.0
    size: tuple[int, int] = (1280, 720)
    bitrate_mbps: float = 1.5
    json_path: str | None = None
    quiet_seconds: float = QUIET_S
    max_cycles: int = MAX_CYCLES  # fewer, when asked for, even if there is time for more

    @property
    def ping_interval_s(self) -> float:
        return max(MIN_PING_INTERVAL_S, self.quiet_seconds - PING_MARGIN_S)

    @property
    def settle_s(self) -> float:
        """After each cycle; a short quiet (a quick check, not a soak) shortens it too."""
        return min(SETTLE_S, self.quiet_seconds)

    def check(self) -> None:
        if not 1 <= self.calls <= MAX_CALLS:
            raise LoadTestError(f"--calls must be 1..{MAX_CALLS}")
        if not 0 < self.minutes <= MAX_MINUTES:
            raise LoadTestError(f"--minutes must be above 0 and at most {MAX_MINUTES:g}")
        if not 2 <= self.cycle_seconds <= 3600:
            raise LoadTestError("--cycle-seconds must be 2..3600")
        if not 1 <= self.max_cycles <= MAX_CYCLES:
            raise LoadTestError(f"--cycles must be 1..{MAX_CYCLES}")
        if not MIN_PING_INTERVAL_S + 1 <= self.quiet_seconds <= 600:
            raise LoadTestError(f"--quiet-seconds must be {MIN_PING_INTERVAL_S + 1:g}..600")


@dataclass
class Sample:
    at_s: float
    label: str
    gauges: dict[str, float]


@dataclass
class SoakReport:
    options: SoakOptions
    samples: list[Sample] = field(default_factory=list)
    cycles: int = 0
    calls_run: int = 0
    failed_calls: int = 0
    screenshots: int = 0
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False

    def _gauges(self, label: str) -> dict[str, float] | None:
        return next((s.gauges for s in self.samples if s.label == label), None)

    def verdicts(self) -> dict[str, Any]:
        base, end = self._gauges("baseline"), self._gauges("end")
        if base is None or end is None:
            return {"returned_to_baseline": False}
        out: dict[str, Any] = {}
        for name in ("peer_connections", "calls_with_media"):
            out[f"{name}_at_end"] = end[name]
        for name in TOLERANCE:
            out[f"{name}_growth"] = end[name] - base[name]
        cycle_rss = [s.gauges["rss_bytes"] / MB for s in self.samples if s.label.startswith("cycle")]
        out["rss_growth_mb"] = (end["rss_bytes"] - base["rss_bytes"]) / MB
        out["rss_slope_mb_per_cycle"] = _slope(cycle_rss[1:]) if len(cycle_rss) >= 3 else None
        # A leak keeps growing; the allocator's high-water mark levels off: the second half tells them apart.
        late = cycle_rss[len(cycle_rss) // 2:]
        out["rss_late_slope_mb_per_cycle"] = _slope(late) if len(late) >= 3 else None
        out["returned_to_baseline"] = (
            end["peer_connections"] == 0 and end["calls_with_media"] == 0
            and all(end[n] - base[n] <= slack for n, slack in TOLERANCE.items())
        )
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "options": asdict(self.options), "cycles": self.cycles, "calls_run": self.calls_run,
            "failed_calls": self.failed_calls, "screenshots": self.screenshots, "errors": self.errors,
            "interrupted": self.interrupted, "samples": [asdict(s) for s in self.samples], **self.verdicts(),
        }


def _slope(values: list[float]) -> float:
    """Least-squares slope per step."""
    n = len(values)
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den if den else 0.0


async def gauges(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with http.get(f"{url}/metrics") as r:
        text = await r.text()
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name.startswith("claimcam_") and name.removeprefix("claimcam_") in GAUGES:
            found[name.removeprefix("claimcam_")] = float(value)
    missing = set(GAUGES) - set(found)
    if missing:
        raise LoadTestError(f"the server's /metrics lacks {', '.join(sorted(missing))}")
    return found


async def run(options: SoakOptions, err: TextIO = sys.stderr) -> SoakReport:
    def say(text: str) -> None:
        print(f"bench soak: {text}", file=err, flush=True)

    report = SoakReport(options)
    try:
        video = await asyncio.to_thread(pattern_clip, *options.size, bitrate=round(options.bitrate_mbps * 1e6))
        audio = await asyncio.to_thread(tone_clip)
    except ClipError as e:
        raise LoadTestError(str(e)) from None
    install_passthrough()
    workdir = Path(tempfile.mkdtemp(prefix="claimcam-bench-soak-"))
    stop_on_sigterm(asyncio.current_task())
    started = time.monotonic()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=API_TIMEOUT_S)) as http, \
                Services(workdir, http, say) as services:
            settings = server_settings(workdir / "var", "passthrough")
            settings["CLAIMCAM_SOCKET_PING_INTERVAL_S"] = f"{options.ping_interval_s:g}"
            server = await services.claimcam("claimcam-soak", settings)
            token = await demo_token(http, server.url)
            api = Api(server.url, token, http)

            def load(calls: int, seconds: float) -> LoadOptions:
                return LoadOptions(url=server.url, token=token, case_id=CASE_ID, calls=calls, seconds=seconds,
                                   screenshots=max(1, round(seconds / 10)), record=True,
                                   ice_host_addresses=("127.0.0.1",), size=options.size, progress=False)

            contact_id, staff_ice = await preflight(api, load(options.calls, options.cycle_seconds))
            outbox = OutboxLinks(api)

            async def cycle(calls: int, seconds: float) -> list[CallReport]:
                shared = Shared(load(calls, seconds), api, outbox, contact_id, staff_ice, video, audio)
                reports = [CallReport(i + 1) for i in range(calls)]
                await asyncio.gather(*(run_call(shared, r, (i + 0.5) / calls) for i, r in enumerate(reports)))
                await asyncio.sleep(options.settle_s)
                return reports

            async def sample(label: str) -> None:
                report.samples.append(Sample(round(time.monotonic() - started, 1), label,
                                             await gauges(http, server.url)))

            # Warm-up at full concurrency: codecs, thread pools and the database pool grow to what N calls
            # need (each pooled SQLite connection holds a thread and two descriptors); that is the baseline.
            await cycle(options.calls, min(WARMUP_CALL_S, options.cycle_seconds))
            await asyncio.sleep(max(0.0, options.quiet_seconds - options.settle_s))
            await sample("baseline")
            deadline = time.monotonic() + options.minutes * 60
            while time.monotonic() + options.cycle_seconds / 2 < deadline and report.cycles < options.max_cycles:
                reports = await cycle(options.calls, options.cycle_seconds)
                report.cycles += 1
                report.calls_run += len(reports)
                report.failed_calls += sum(1 for r in reports if not r.ok)
                report.screenshots += sum(len(r.screenshot_latencies_s) for r in reports)
                report.errors += [f"cycle {report.cycles} call {r.index}: {e}" for r in reports for e in r.errors]
                await sample(f"cycle {report.cycles}")
                say(_one_line(report.samples[-1]))
                if not server.child.running:
                    report.errors.append(f"the server exited:\n{server.child.log_tail()}")
                    break
            await asyncio.sleep(options.quiet_seconds)
            await sample("end")
    except (ServiceError, ApiError, aiohttp.ClientError) as e:
        report.errors.append(f"{type(e).__name__}: {e}")
    except asyncio.CancelledError:
        report.interrupted = True
        raise
    finally:
        forget_sigterm()
        shutil.rmtree(workdir, ignore_errors=True)
        _write(report, err)
    return report


def _one_line(s: Sample) -> str:
    g = s.gauges
    return (f"{s.label}: peers {g['peer_connections']:.0f}, calls {g['calls_with_media']:.0f}, "
            f"tasks {g['asyncio_tasks']:.0f}, fds {g['open_fds']:.0f}, threads {g['threads']:.0f}, "
            f"RSS {g['rss_bytes'] / MB:.1f} MB")


def markdown(report: SoakReport) -> str:
    o = report.options
    cap = f" (at most {o.max_cycles})" if o.max_cycles < MAX_CYCLES else ""
    lines = [f"Soak: {o.calls} call(s) per cycle, cycles of {o.cycle_seconds:g} s for {o.minutes:g} min{cap}; "
             f"{report.cycles} cycles, {report.calls_run} calls ({report.failed_calls} failed), "
             f"{report.screenshots} screenshots, every call recorded.", "",
             "| sample | at (s) | peer connections | calls with media | asyncio tasks | open fds | threads "
             "| RSS (MB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in report.samples:
        g = s.gauges
        lines.append(f"| {s.label} | {s.at_s:g} | {g['peer_connections']:.0f} | {g['calls_with_media']:.0f} | "
                     f"{g['asyncio_tasks']:.0f} | {g['open_fds']:.0f} | {g['threads']:.0f} | "
                     f"{g['rss_bytes'] / MB:.1f} |")
    v = report.verdicts()
    if "rss_growth_mb" in v:
        slope = v["rss_slope_mb_per_cycle"]
        lines += ["", f"Back to baseline: {'yes' if v['returned_to_baseline'] else '**no**'} "
                  f"(peers {v['peer_connections_at_end']:.0f}, calls {v['calls_with_media_at_end']:.0f}, "
                  f"tasks {v['asyncio_tasks_growth']:+.0f}, fds {v['open_fds_growth']:+.0f}, "
                  f"threads {v['threads_growth']:+.0f}); RSS {v['rss_growth_mb']:+.1f} MB from the baseline, "
                  + ("slope -" if slope is None else f"slope {slope:+.2f} MB per cycle after the first")
                  + ("" if v["rss_late_slope_mb_per_cycle"] is None
                     else f", {v['rss_late_slope_mb_per_cycle']:+.2f} over the second half") + "."]
    return "\n".join(lines)


def _write(report: SoakReport, err: TextIO) -> None:
    print(markdown(report), flush=True)
    for e in report.errors[:20]:
        print(f"error: {e}", file=err)
    write_json("claimcam bench soak", report.options.json_path, report.as_json(), err)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calls", type=int, default=10, help=f"concurrent calls per cycle, 1..{MAX_CALLS} (default 10)")
    p.add_argument("--minutes", type=float, default=10.0, help="how long to run cycles (default 10)")
    p.add_argument("--cycle-seconds", type=float, default=60.0, help="length of each cycle's calls (default 60)")
    p.add_argument("--cycles", dest="max_cycles", type=int, default=MAX_CYCLES, metavar="N",
                   help="stop after this many cycles, even with minutes left (default: as many as fit)")
    p.add_argument("--size", type=parse_size, default=(1280, 720), help="camera WxH (default 1280x720)")
    p.add_argument("--bitrate", type=float, default=1.5, help="video Mbit/s (default 1.5)")
    p.add_argument("--json", dest="json_path", help="write the report as JSON here")
    p.add_argument("--quiet-seconds", type=float, default=QUIET_S,
                   help=f"pause before the baseline and the end sample (default {QUIET_S:g}); the server's "
                        f"Engine.IO ping interval is this minus {PING_MARGIN_S:g} s (at least {MIN_PING_INTERVAL_S:g} "
                        f"s), so closed sockets' ping tasks are gone by then; it also caps each cycle's settle "
                        f"({SETTLE_S:g} s)")


def command(args: argparse.Namespace) -> int:
    """0 when every call worked and the server returned to its baseline; 1 otherwise; 2 when it cannot start."""
    options = SoakOptions(args.calls, args.minutes, args.cycle_seconds, args.size, args.bitrate, args.json_path,
                          args.quiet_seconds, args.max_cycles)

    async def start() -> SoakReport:
        options.check()
        install_host_addresses(("127.0.0.1",))
        return await run(options)

    def verdict(report: SoakReport) -> str | None:
        if report.errors or report.failed_calls:
            return f"{report.failed_calls} call(s) failed, {len(report.errors)} error(s)"
        return None if report.verdicts().get("returned_to_baseline") else "the server did not return to its baseline"

    return run_command("claimcam bench soak", start, verdict, (LoadTestError,))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="claimcam bench soak", description=DESCRIPTION)
    add_arguments(parser)
    return command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
