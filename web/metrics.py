"""Prometheus metrics on a registry of this app's own (no process-global registry)."""

from __future__ import annotations

import asyncio
import os
import resource
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "claimcam_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "claimcam_http_request_seconds", "HTTP request latency", ["route"], registry=self.registry
        )
        self.invites = Counter(
            "claimcam_invites_created_total", "Invites created", ["method"], registry=self.registry
        )
        self.deliveries = Counter(
            "claimcam_deliveries_total", "Delivery attempts by outcome", ["outcome"], registry=self.registry
        )

    def watch_runtime(self, peer_connections: Callable[[], int], calls_with_media: Callable[[], int]) -> None:
        """Gauges read when /metrics is scraped: what a soak run watches for leaks (aiortc issue #904)."""
        gauges: list[tuple[str, str, Callable[[], float]]] = [
            ("claimcam_peer_connections", "Server-side WebRTC peer connections", peer_connections),
            ("claimcam_calls_with_media", "Calls with media on this node", calls_with_media),
            ("claimcam_asyncio_tasks", "Tasks on the event loop", lambda: len(asyncio.all_tasks())),
            ("claimcam_open_fds", "Open file descriptors of this process", _open_fds),
            ("claimcam_rss_bytes", "Resident memory of this process", _rss_bytes),
            ("claimcam_threads", "Threads of this process", _threads),
        ]
        for name, doc, read in gauges:
            Gauge(name, doc, registry=self.registry).set_function(read)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _open_fds() -> float:
    try:
        return float(len(os.listdir("/proc/self/fd")))
    except OSError:
        return -1.0


def _status_field(name: str) -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return -1.0


def _rss_bytes() -> float:
    kb = _status_field("VmRSS")
    return kb * 1024 if kb >= 0 else float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def _threads() -> float:
    return _status_field("Threads")
