"""The gateway's edge behaviour on real processes (gateway + cart service + Redis): bad tokens,
rate limits, body limits and malformed bodies are problem+json; bot-like velocity is flagged;
the routing file is followed live (Fencing -> 503 + Retry-After naming the writer) and its
freshness is part of readiness."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gateway_harness as gh
import httpx
import pytest
import services_harness as h

from checkout_stack.components.redis import Redis

pytestmark = pytest.mark.stack

MAX_BODY = 2048


class Edge:
    def __init__(self, workdir: Path, keys: gh.Keys, gateway: h.ServiceProc, routing: Path):
        self.workdir = workdir
        self.keys = keys
        self.gateway = gateway
        self.routing = routing
        self.gateways = {gh.EU: gateway.url, gh.US: "http://127.0.0.1:9"}

    def set_routing(self, states: dict[str, str], writers: dict[str, str] | None = None) -> None:
        gh.write_atomically(self.routing, gh.routing_doc(self.gateways, writers or {}, states, 5))


@pytest.fixture(scope="module")
def edge(redis: Redis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    workdir: Path = tmp_path_factory.mktemp("gateway-edge")
    keys = gh.make_keys(workdir)
    redis_url = redis.url.rsplit("/", 1)[0] + "/9"
    routing = workdir / "routing.json"
    gh.write_atomically(routing, gh.routing_doc({gh.EU: "x", gh.US: "y"}, {}, {}, 5))
    cart, gateway = gh.edge_procs(
        workdir,
        keys,
        redis_url,
        routing,
        GATEWAY_MAX_BODY_BYTES=str(MAX_BODY),
        GATEWAY_CLIENT_RATE="1",
        GATEWAY_CLIENT_BURST="5",
        GATEWAY_BOT_THRESHOLD="8",
        GATEWAY_ROUTING_MAX_AGE_SECONDS="1",
    )
    e = Edge(workdir, keys, gateway, routing)
    e.set_routing({})
    gateway.start()
    try:
        yield e
    finally:
        gateway.stop()
        cart.stop()


def client(edge: Edge) -> httpx.Client:
    return httpx.Client(base_url=edge.gateway.url, timeout=30)


def test_a_read_is_served_by_the_local_service(edge: Edge) -> None:
    with client(edge) as c:
        auth = edge.keys.auth("reader-1")
        made = c.post("/v1/carts", json={"market": "DE", "currency": "EUR"}, headers=auth)
        assert made.status_code == 201, made.text
        assert made.headers["x-checkout-served-by"] == gh.EU
        assert made.headers["x-request-id"]
        cart_id = made.json()["cart_id"]
        got = c.get(f"/v1/carts/{cart_id}", headers=auth)
        assert got.status_code == 200
        assert got.json()["cart_id"] == cart_id
        # the service's own 404 comes back as it is (problem+json)
        missing = c.get("/v1/carts/" + "0" * 32, headers=auth)
        h.assert_problem(missing, 404)
    assert gh.metric(edge.gateway.url, "checkout_gateway_requests_total", decision="local") >= 3


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing"),
        ("Bearer nonsense", "not a JWT"),
        ("Token abc", "Bearer"),
    ],
)
def test_missing_or_bad_token_is_401(edge: Edge, header: str | None, message: str) -> None:
    headers = {"Authorization": header} if header else {}
    with client(edge) as c:
        resp = c.post("/v1/checkouts", json=gh.checkout_body("co-x", "DE"), headers=headers)
    body = h.assert_problem(resp, 401)
    assert message in body["detail"]
    assert body["field"] == "Authorization"
    assert resp.headers["www-authenticate"].startswith("Bearer")


def test_expired_and_foreign_tokens_are_401(edge: Edge) -> None:
    stranger = gh.Keys(gh.rsa_key(), edge.keys.kid, edge.keys.jwks_file)
    with client(edge) as c:
        for token in (edge.keys.token(ttl_s=-300), stranger.token()):
            resp = c.get("/v1/stock/tee", headers={"Authorization": f"Bearer {token}"})
            h.assert_problem(resp, 401)
    assert gh.metric(edge.gateway.url, "checkout_gateway_rejections_total", reason="unauthorized")


def test_over_the_client_limit_is_429_with_retry_after(edge: Edge) -> None:
    auth = edge.keys.auth("greedy-client")
    statuses: list[int] = []
    limited: httpx.Response | None = None
    with client(edge) as c:
        for _ in range(12):
            resp = c.get("/v1/carts/" + "0" * 32, headers=auth)
            statuses.append(resp.status_code)
            if resp.status_code == 429:
                limited = resp
    # burst 5 at 1/s: the first five pass (the cart is unknown: 404), then the bucket is empty
    assert statuses[:5] == [404] * 5, statuses
    assert statuses.count(429) >= 5, statuses
    assert limited is not None
    body = h.assert_problem(limited, 429)
    assert body["limit"] == "client"
    assert int(limited.headers["retry-after"]) >= 1
    # another client is not affected
    with client(edge) as c:
        other = c.get("/v1/carts/" + "0" * 32, headers=edge.keys.auth("calm-client"))
    assert other.status_code == 404


def test_bot_like_velocity_is_flagged(edge: Edge) -> None:
    before = gh.metric(edge.gateway.url, "checkout_gateway_bot_flags_total")
    with client(edge) as c:
        auth = edge.keys.auth("bot-like")
        for _ in range(12):
            c.get("/v1/stock/tee", headers=auth)
    after = gh.metric(edge.gateway.url, "checkout_gateway_bot_flags_total")
    assert after - before >= 3


def test_oversized_body_is_413(edge: Edge) -> None:
    big: dict[str, Any] = {**gh.checkout_body("co-big", "DE"), "pad": "x" * (MAX_BODY + 1)}
    raw = json.dumps(big).encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(raw), 512):
            yield raw[i : i + 512]

    with client(edge) as c:
        auth = {**edge.keys.auth("big-body"), "Content-Type": "application/json"}
        by_length = c.post("/v1/checkouts", content=raw, headers=auth)
        chunked = c.post("/v1/checkouts", content=chunks(), headers=auth)
    for resp in (by_length, chunked):
        body = h.assert_problem(resp, 413)
        assert body["limit"] == MAX_BODY


def test_malformed_and_invalid_bodies(edge: Edge) -> None:
    with client(edge) as c:
        auth = {**edge.keys.auth("sloppy"), "Content-Type": "application/json"}
        broken = c.post("/v1/checkouts", content=b'{"market": "DE",', headers=auth)
        assert h.assert_problem(broken, 400)["field"] == "body"
        array = c.post("/v1/checkouts", content=b"[1, 2]", headers=auth)
        assert h.assert_problem(array, 422)["field"] == "body"
        no_market = c.post("/v1/checkouts", json={"checkout_id": "co-1"}, headers=auth)
        assert h.assert_problem(no_market, 422)["field"] == "market"
        unknown = c.post(
            "/v1/checkouts", json=gh.checkout_body("co-2", "DE") | {"market": "ZZ"}, headers=auth
        )
        assert h.assert_problem(unknown, 422)["field"] == "market"


def test_fencing_is_503_with_retry_after_and_the_writer_live(edge: Edge) -> None:
    with client(edge) as c:
        auth = edge.keys.auth("fenced")
        edge.set_routing({"DE": "Fencing"}, {"DE": gh.US})
        resp = c.post("/v1/checkouts", json=gh.checkout_body("co-f", "DE"), headers=auth)
        body = h.assert_problem(resp, 503)
        assert body["type"].endswith("/gateway/market-fencing")
        assert body["writer"] == gh.US
        assert body["epoch"] == 5
        assert int(resp.headers["retry-after"]) >= 1
        assert resp.headers["x-checkout-writer"] == gh.US
        edge.set_routing({"DE": "Down"})
        down = c.post("/v1/checkouts", json=gh.checkout_body("co-f", "DE"), headers=auth)
        assert h.assert_problem(down, 503)["type"].endswith("/gateway/market-down")
        edge.set_routing({})
    assert (
        gh.metric(
            edge.gateway.url, "checkout_gateway_requests_total", market="DE", decision="rejected"
        )
        >= 2
    )


def test_readiness_follows_the_routing_tables_freshness(edge: Edge) -> None:
    with client(edge) as c:
        assert c.get("/health/ready").status_code == 200
        edge.routing.write_text("{broken")
        deadline = time.monotonic() + 10
        resp = c.get("/health/ready")
        while resp.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            resp = c.get("/health/ready")
        body = h.assert_problem(resp, 503)
        assert body["checks"]["routing"] == "StaleRouting"
        edge.set_routing({})
        deadline = time.monotonic() + 10
        while c.get("/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "readiness did not come back"
            time.sleep(0.2)
