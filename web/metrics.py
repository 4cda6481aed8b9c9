"""Prometheus metrics on a registry of this app's own (no process-global registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


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

    def render(self) -> bytes:
        return generate_latest(self.registry)
