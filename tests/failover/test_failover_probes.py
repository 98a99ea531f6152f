"""The HTTP prober against real loopback servers: each way a health endpoint can fail."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from checkout_operator.probes import http
from stack import operator_support as sup

from .fleet_env import HealthServer


@pytest.fixture
async def server() -> AsyncIterator[HealthServer]:
    s = HealthServer(sup.free_port())
    await s.start()
    yield s
    await s.stop()


async def test_each_failure_is_classified_with_its_reason(server: HealthServer) -> None:
    prober = http.Prober()
    url = server.url + "/health/ready"
    try:
        ok = await prober.probe(url, 1.0)
        assert (ok.outcome, ok.reason) == ("Success", "200")
        server.mode = "503"
        bad = await prober.probe(url, 1.0)
        assert (bad.outcome, bad.reason) == ("Failure", "503")
        server.mode = "slow"
        server.slow_seconds = 0.3
        slow = await prober.probe(url, 1.0)
        assert slow.outcome == "Success"
        assert slow.latency >= 0.3
        server.mode = "hang"
        server.hang_seconds = 2.0
        hung = await prober.probe(url, 0.5)
        assert (hung.outcome, hung.reason) == ("Unknown", "timeout after 0.5 s")
        assert 0.5 <= hung.latency < 1.5
        tls = await prober.probe(url.replace("http://", "https://"), 1.0)
        assert (tls.outcome, tls.reason) == ("Failure", "tls")
        await server.stop()
        refused = await prober.probe(url, 1.0)
        assert (refused.outcome, refused.reason) == ("Failure", "refused")
        both = await prober.probe_all({"a": url, "b": url}, {"a": 1.0, "b": 1.0})
        assert sorted(both) == ["a", "b"]
        assert {r.reason for r in both.values()} == {"refused"}
    finally:
        await prober.aclose()
