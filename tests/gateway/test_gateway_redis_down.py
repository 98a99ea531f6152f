"""Issue 18 finding 8: with Redis down the gateway fails closed, as docs/security.md says: every
request (a valid token or not) is a 503 problem+json with ``Retry-After: 1``, never admitted
unmetered and never a 500; readiness fails with it, and the gateway serves again once Redis is
back. A real Redis of this test's own, stopped and started again under the running gateway."""

from __future__ import annotations

import time
from pathlib import Path

import gateway_harness as gh
import httpx
import pytest
import services_harness as h

from checkout_stack.components.redis import Redis

pytestmark = pytest.mark.stack


def test_redis_down_is_503_with_retry_after_and_recovers(tmp_path: Path) -> None:
    redis = Redis(tmp_path / "redis").start()
    again = Redis(tmp_path / "redis", port=redis.port)
    keys = gh.make_keys(tmp_path)
    routing = tmp_path / "routing.json"
    gh.write_atomically(routing, gh.routing_doc({gh.EU: "x", gh.US: "y"}, {}, {}, 5))
    cart, gateway = gh.edge_procs(tmp_path, keys, redis.url, routing)
    try:
        gateway.start()
        auth = keys.auth("redis-down")
        body = {"market": "DE", "currency": "EUR"}
        with httpx.Client(base_url=gateway.url, timeout=30) as c:
            assert c.post("/v1/carts", json=body, headers=auth).status_code == 201
            redis.stop()
            for headers in (auth, {"Authorization": "Bearer not-a-token"}, {}):
                resp = c.post("/v1/carts", json=body, headers=headers)
                h.assert_problem(resp, 503)
                assert resp.headers["retry-after"] == "1", resp.headers
            h.assert_problem(c.get("/health/ready"), 503)
            assert c.get("/health/live").status_code == 200
            again.start()  # the same port: the gateway's client reconnects
            deadline = time.monotonic() + 30
            while (made := c.post("/v1/carts", json=body, headers=auth)).status_code != 201:
                assert time.monotonic() < deadline, made.text
                time.sleep(0.2)
        log = gateway.log.read_text(errors="replace")
        assert "Traceback" not in log
    finally:
        gateway.stop()
        cart.stop()
        redis.stop()
        again.stop()
