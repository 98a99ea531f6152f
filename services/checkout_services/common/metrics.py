"""Prometheus: one registry per app; request latency by route template (pure ASGI middleware)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "checkout_http_request_seconds",
            "HTTP request latency by route template, method and status class",
            ["service", "route", "method", "status"],
            registry=self.registry,
            buckets=BUCKETS,
        )
        self.service = service


def route_of(scope: Scope) -> str:
    """The route template the router matched (it records it in the scope), bounded labels."""
    route = scope.get("route")
    return str(getattr(route, "path", "unmatched"))


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self.metrics.requests.labels(
                self.metrics.service,
                route_of(scope),
                scope.get("method", ""),
                f"{status[0] // 100}xx",
            ).observe(time.perf_counter() - start)
