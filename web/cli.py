"""`claimcam serve`, `claimcam demo`, `claimcam migrate`, `claimcam settings`, `claimcam loadtest`, `claimcam bench`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from aiohttp import web

from bench import calls as calls_bench
from bench import loadtest
from bench import signalling as signalling_bench
from bench import soak as soak_bench
from rooms.database import open_engine
from rooms.migrations import migrate
from web import demo, workers
from web.access_log import RedactingAccessLogger
from web.app import create_app
from web.settings import Settings, SettingsError, load_settings, setting_fields


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="claimcam", description="Remote video inspection server")
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "run the server"),
        ("demo", "run the server in demo mode with seeded data"),
        ("migrate", "apply database migrations and exit"),
        ("settings", "print every setting with its default as a Markdown table"),
    ):
        sp = sub.add_parser(name, help=help_text)
        sp.add_argument("--config", help="TOML settings file (also CLAIMCAM_CONFIG)")
        if name in ("serve", "demo"):
            sp.add_argument("--host", help="bind address (CLAIMCAM_HOST, default 127.0.0.1)")
            sp.add_argument("--port", type=int, help="port (CLAIMCAM_PORT, default 8080)")
            sp.add_argument("--workers", type=int, default=1,
                            help=f"server processes on the one port, 1..{workers.MAX_WORKERS}; more than 1 needs "
                                 "CLAIMCAM_REDIS_URL (see web/workers.py)")
            sp.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # a child of --workers
    lt = sub.add_parser("loadtest", help="run concurrent calls against a server and measure them",
                        description=loadtest.DESCRIPTION)
    loadtest.add_arguments(lt)
    bench = sub.add_parser("bench", help="benchmarks that start their own servers on 127.0.0.1 and print numbers")
    benchmarks = bench.add_subparsers(dest="benchmark", required=True)
    sig = benchmarks.add_parser("signalling", help="cursor and chat delivery through Socket.IO vs a raw websocket",
                                description=signalling_bench.DESCRIPTION)
    signalling_bench.add_arguments(sig)
    sig.set_defaults(run_benchmark=signalling_bench.command)
    calls = benchmarks.add_parser(
        "calls", help="server CPU, memory, fps, set-up and screenshots per call, passthrough against the naive relay",
        description=calls_bench.DESCRIPTION,
    )
    calls_bench.add_arguments(calls)
    calls.set_defaults(run_benchmark=calls_bench.command)
    soak = benchmarks.add_parser("soak", help="calls in cycles for minutes; do the server's resources come back?",
                                 description=soak_bench.DESCRIPTION)
    soak_bench.add_arguments(soak)
    soak.set_defaults(run_benchmark=soak_bench.command)
    return p


def settings_table() -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for f in setting_fields():
        default = f.default
        shown = "(empty)" if default == "" else str(default).lower() if isinstance(default, bool) else str(default)
        lines.append(f"| `CLAIMCAM_{f.name.upper()}` | `{shown}` | {f.metadata['doc']} |")
    return "\n".join(lines)


def _banner(settings: Settings) -> str:
    base = settings.public_url
    lines = [f"claimcam demo on {base}", "", f"  Sign in as a demo user: {base}/dev/login",
             f"  Calls management: {base}/cases/{demo.CASE.id}/calls",
             f"  Outbox (sent SMS/email): {base}/dev/outbox", f"  Demo users and tokens: {base}/dev/demo",
             f"  API document: {base}/api/v1/openapi.json", "", "Bearer tokens of the demo users:"]
    for u in demo.demo_users(settings.jwt_secret):
        lines.append(f"  {u.name} ({u.role}, {u.access} access): {u.token}")
    lines.append(f"  Claims platform (scope platform): {demo.platform_token(settings.jwt_secret)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "settings":
        print(settings_table())
        return 0
    if args.command == "loadtest":
        return loadtest.command(args)
    if args.command == "bench":
        return int(args.run_benchmark(args))
    try:
        settings = load_settings(
            config_file=args.config,
            host=getattr(args, "host", None),
            port=getattr(args, "port", None),
            demo=True if args.command == "demo" else None,
        ).resolved()
    except (SettingsError, OSError) as e:
        print(f"claimcam: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    n = getattr(args, "workers", 1)
    if not 1 <= n <= workers.MAX_WORKERS:
        print(f"claimcam: --workers must be 1..{workers.MAX_WORKERS}", file=sys.stderr)
        return 2
    if n > 1:
        if not settings.redis_url:
            print("claimcam: --workers above 1 needs CLAIMCAM_REDIS_URL: the workers are nodes that share "
                  "Socket.IO rooms and call media through Redis", file=sys.stderr)
            return 2
        asyncio.run(_migrate(settings))  # once, before the workers race to do it
        command = workers.child_command(args.config, settings.host, settings.port, demo=args.command == "demo")
        return workers.supervise(command, n, address=(settings.host, settings.port))
    app = create_app(settings, websocket_only=args.worker)
    if settings.demo and not args.worker:
        app.on_startup.append(lambda _app: _print_banner(settings))
    web.run_app(app, host=settings.host, port=settings.port, shutdown_timeout=5, print=None, reuse_port=args.worker,
                access_log_class=RedactingAccessLogger)
    return 0


async def _print_banner(settings: Settings) -> None:
    print(_banner(settings), flush=True)


async def _migrate(settings: Settings) -> int:
    engine = open_engine(settings.database_url)
    try:
        applied = await migrate(engine)
    finally:
        await engine.dispose()
    print(f"applied migrations: {applied or 'none (up to date)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
