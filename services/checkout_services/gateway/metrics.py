"""The gateway's own metrics, in the app's registry (beside the common request histogram)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from checkout_services.common import metrics

FORWARD_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics(metrics.ServiceMetrics):
    def __init__(self) -> None:
        super().__init__("gateway")
        self.decisions = Counter(
            "checkout_gateway_requests",
            "Gateway requests by route template, market and decision (local, forwarded, rejected)",
            ["route", "market", "decision"],
            registry=self.registry,
        )
        self.rejections = Counter(
            "checkout_gateway_rejections",
            "Rejected requests by reason (unauthorized, rate-limited, body-too-large, ...)",
            ["reason"],
            registry=self.registry,
        )
        self.forward_seconds = Histogram(
            "checkout_gateway_forward_seconds",
            "Round trip of a write forwarded to the writer region's gateway",
            ["peer"],
            registry=self.registry,
            buckets=FORWARD_BUCKETS,
        )
        self.upstream_seconds = Histogram(
            "checkout_gateway_upstream_seconds",
            "Round trip to a service of the local region",
            ["service"],
            registry=self.registry,
            buckets=FORWARD_BUCKETS,
        )
        self.origin_lookups = Counter(
            "checkout_gateway_origin_lookups",
            "Payment details the market's writer did not hold, looked up at the market's other"
            " read regions: found, nowhere, unanswered",
            ["outcome"],
            registry=self.registry,
        )
        self.bot_flags = Counter(
            "checkout_gateway_bot_flags",
            "Requests flagged for bot-like velocity",
            registry=self.registry,
        )
        self.routing_age = Gauge(
            "checkout_gateway_routing_age_seconds",
            "Seconds since the routing table was last read and validated",
            registry=self.registry,
        )
        self.routing_reloads = Gauge(
            "checkout_gateway_routing_reloads",
            "How many times a changed routing file was loaded",
            registry=self.registry,
        )
