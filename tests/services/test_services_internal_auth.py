"""Issue 18 finding 4, "make the services refuse requests that did not come through [the
gateway]", for the internal routes: a region run as deployed (every service holds the region's
``CHECKOUT_GATEWAY_KEY``) refuses an unsigned, forged or moved signature on every route of
payments, orders, inventory and pricing but health, metrics, the API description and the
providers' webhooks (those keep their own provider signature). The callers sign: the orders
saga (``internal/orders``: price, reserve, authorize, capture, void, release) and the DLQ
replay (``internal/dlq``: orders' ``/compensate``, inventory's ``/release``). Before, payments
and ``/compensate`` took any request, and a replay of an expired reservation got 401.

Real processes, PostgreSQL, Redis, Kafka, Temporal; only the PSPs are simulated.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import checkout_env as ce
import httpx
import payments_harness as ph
import pytest
import services_harness as h
from test_services_inventory import EXPIRED_TOPIC, consume_all

from checkout_services.common import principal
from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis
from checkout_stack.components.temporal import Temporal
from checkout_stack.pytest_plugin import KafkaClusters

pytestmark = pytest.mark.stack

OPEN = {"/health/live", "/health/ready", "/metrics", "/openapi.json", "/docs", "/redoc"}
"""Routes any caller may reach: probes, Prometheus, the API description."""
WEBHOOKS = "/v1/webhooks/{provider}"
"""Payments' provider webhooks: authenticated by the provider's own signature instead."""
SAGA = principal.internal("orders")


@pytest.fixture(scope="module")
def env(
    postgres: Postgres,
    redis: Redis,
    temporal: Temporal,
    kafka_clusters: KafkaClusters,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ce.CheckoutEnv]:
    yield from ce.running(
        postgres,
        redis,
        temporal,
        kafka_clusters,
        tmp_path_factory,
        "signed-region",
        redis_db=6,
        webhooks=True,
        signed=True,
    )


def signed(
    method: str, path: str, who: str = SAGA, body: bytes = b"", key: str = ce.KEY
) -> dict[str, str]:
    headers = principal.signed_headers(key.encode(), method, path, who, body)
    return {**headers, "Content-Type": "application/json"}


def routes(base: str) -> list[tuple[str, str]]:
    """Every (METHOD, path template) the service's own API description lists."""
    spec = httpx.get(f"{base}/openapi.json", timeout=10).json()
    return sorted(
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method in ops
        if method in ("get", "post", "put", "delete", "patch")
    )


def concrete(template: str) -> str:
    """A path template with every parameter filled with a valid-looking id."""
    out = template
    while "{" in out:
        start, end = out.index("{"), out.index("}")
        out = out[:start] + "co-x1" + out[end + 1 :]
    return out


def assert_refused(resp: httpx.Response) -> None:
    problem = h.assert_problem(resp, 401)
    assert problem["type"].endswith("/not-from-gateway"), problem


async def test_every_route_but_health_metrics_and_webhooks_needs_the_signature(
    env: ce.CheckoutEnv,
) -> None:
    services = {
        "payments": env.payments.url,
        "orders": env.orders.url,
        "inventory": env.inventory.url,
        "pricing": env.pricing.url,
    }
    guarded: dict[str, list[str]] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        for name, base in services.items():
            for method, template in routes(base):
                if template in OPEN or template == WEBHOOKS:
                    continue
                path = concrete(template)
                url = base + path
                body = b"{}" if method in ("POST", "PUT", "PATCH") else b""
                plain = {"Content-Type": "application/json"}
                # unsigned; signed with another key; a signature of another path; a client's
                # own principal header without a signature
                assert_refused(await client.request(method, url, content=body, headers=plain))
                forged = signed(method, path, body=body, key="f" * 64)
                assert_refused(await client.request(method, url, content=body, headers=forged))
                moved = signed(method, path + "x", body=body)
                assert_refused(await client.request(method, url, content=body, headers=moved))
                bare = {**plain, principal.PRINCIPAL_HEADER: SAGA}
                assert_refused(await client.request(method, url, content=body, headers=bare))
                guarded.setdefault(name, []).append(f"{method} {template}")
            for path in ("/health/live", "/health/ready", "/metrics"):
                assert (await client.get(base + path)).status_code == 200, (name, path)
    # the routes this issue closed are among them (a renamed route must not escape the list)
    assert {
        "POST /v1/payments/authorize",
        "POST /v1/payments/{checkout_id}/capture",
        "POST /v1/payments/{checkout_id}/void",
        "POST /v1/payments/{checkout_id}/refunds",
        "POST /v1/payments/{checkout_id}/details",
        "GET /v1/payments/{checkout_id}",
        "POST /v1/payments/reconcile",
    } <= set(guarded["payments"]), guarded["payments"]
    assert "POST /v1/orders/{checkout_id}/compensate" in guarded["orders"]
    assert "POST /v1/reservations/{checkout_id}/release" in guarded["inventory"]
    # a signed request passes the check (and meets the route's own answer: no payment yet)
    async with httpx.AsyncClient(base_url=env.payments.url, timeout=30) as client:
        path = "/v1/payments/co-none"
        resp = await client.get(path, headers=signed("GET", path))
        assert h.assert_problem(resp, 404)["type"].endswith("/payment-not-found")


async def test_provider_webhooks_keep_their_own_signature(env: ce.CheckoutEnv) -> None:
    """The webhook route checks the provider's signature, not the region's key: a Stripe event
    signed with the account's webhook secret passes with no gateway header; a bad one is 401
    ``webhook-signature``."""
    secret = (env.workdir / "creds" / "stripe-eu" / "webhook-secret").read_text().strip()
    event = {
        "id": f"evt_{uuid.uuid4().hex[:12]}",
        "object": "event",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": f"pi_{uuid.uuid4().hex[:12]}", "object": "payment_intent"}},
    }
    body = json.dumps(event).encode()
    ts = int(time.time())
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    async with httpx.AsyncClient(base_url=env.payments.url, timeout=30) as client:
        good = await client.post(
            "/v1/webhooks/stripe-eu", content=body, headers={"Stripe-Signature": f"t={ts},v1={mac}"}
        )
        assert good.status_code == 200, good.text
        bad = await client.post(
            "/v1/webhooks/stripe-eu",
            content=body,
            headers={"Stripe-Signature": f"t={ts},v1={'0' * 64}"},
        )
        assert h.assert_problem(bad, 401)["type"].endswith("/webhook-signature")


async def set_stock(env: ce.CheckoutEnv, sku: str, qty: int) -> None:
    path = f"/v1/stock/{sku}"
    body = json.dumps({"available": qty}).encode()
    async with httpx.AsyncClient(base_url=env.inventory.url, timeout=30) as client:
        r = await client.put(path, content=body, headers=signed("PUT", path, body=body))
        assert r.status_code == 200, r.text


async def test_the_saga_signs_and_a_capture_failure_replays_signed(env: ce.CheckoutEnv) -> None:
    """A checkout through a signed region: the saga's price, reserve and authorize calls pass
    (the order is placed), the capture fails at the PSP, the compensation voids the payment
    and releases the stock (signed calls to payments and inventory); ``dlq replay`` reaches
    orders' ``/compensate`` signed. Without the key the replay does not start (exit 2)."""
    await set_stock(env, "tee", 5)
    env.sim.faults({"kind": "error_5xx", "operation": "capture"})
    cid = f"co-{uuid.uuid4().hex[:10]}"
    order = {
        "checkout_id": cid,
        "market": "DE",
        "currency": "EUR",
        "lines": [{"sku": "tee", "quantity": 1}],
        "payment_method_token": ph.TOKEN,
    }
    raw = json.dumps(order).encode()
    try:
        async with httpx.AsyncClient(base_url=env.orders.url, timeout=60) as client:
            resp = await client.post(
                "/v1/checkouts", content=raw, headers=signed("POST", "/v1/checkouts", "ann", raw)
            )
            assert resp.status_code == 201, resp.text
            path = f"/v1/orders/{cid}"
            deadline = time.monotonic() + 90
            while True:
                got = await client.get(path, headers=signed("GET", path, "ann"))
                assert got.status_code == 200, got.text
                if got.json()["state"] == "capture_failed":
                    break
                assert time.monotonic() < deadline, got.json()
                await asyncio.sleep(0.3)
    finally:
        env.sim.admin("DELETE", "faults")
    pay = f"/v1/payments/{cid}"
    async with httpx.AsyncClient(base_url=env.payments.url, timeout=10) as client:
        state = (await client.get(pay, headers=signed("GET", pay))).json()
    assert state["state"] == "voided", state

    listed = await asyncio.to_thread(ce.dlq_cli, env, "list", "--wait", "5")
    assert listed.returncode == 0, listed.stderr
    mine = [
        e for e in map(json.loads, listed.stdout.splitlines()) if e["data"].get("checkoutId") == cid
    ]
    assert [e["type"] for e in mine] == ["PAYMENT_CAPTURE_FAILED"]
    event_id = mine[0]["eventId"]
    for _ in range(2):  # idempotent
        done = await asyncio.to_thread(ce.dlq_cli, env, "replay", event_id, "--wait", "5")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)["result"]
        assert (result["order_state"], result["payment"]) == ("compensated", "voided")

    no_key = await asyncio.to_thread(
        ce.dlq_cli, env, "replay", event_id, "--wait", "1", CHECKOUT_GATEWAY_KEY=""
    )
    assert no_key.returncode == 2, no_key.stderr
    assert "CHECKOUT_GATEWAY_KEY" in no_key.stderr
    assert "Traceback" not in no_key.stderr


async def test_an_expired_reservation_replays_signed(env: ce.CheckoutEnv) -> None:
    """RESERVATION_EXPIRED, from a real expiry through the outbox and Kafka: ``dlq replay``
    calls inventory's ``/release`` signed and gets the released reservation; the same replay
    unsigned (the check off on the tool's side only) is refused with 401, as on main."""
    sku = f"sku-{uuid.uuid4().hex[:8]}"
    cid = f"co-{uuid.uuid4().hex[:10]}"
    await set_stock(env, sku, 3)
    async with httpx.AsyncClient(base_url=env.inventory.url, timeout=30) as client:
        body = json.dumps(
            {"checkout_id": cid, "market": "DE", "lines": [{"sku": sku, "quantity": 2}]}
        ).encode()
        made = await client.post(
            "/v1/reservations", content=body, headers=signed("POST", "/v1/reservations", body=body)
        )
        assert made.status_code == 201, made.text
        conn = await asyncpg.connect(env.inventory.env["DATABASE_URL"])
        try:  # time passes: the reservation is past its TTL
            await conn.execute(
                "UPDATE reservations SET expires_at = now() - interval '1 second'"
                " WHERE checkout_id = $1",
                cid,
            )
        finally:
            await conn.close()
        sweep = "/v1/reservations/sweep"
        swept = await client.post(sweep, headers=signed("POST", sweep))
        assert swept.status_code == 200, swept.text
    events = await consume_all(
        env.kafka_bootstrap, EXPIRED_TOPIC, 1, mine=lambda e: e["data"].get("checkoutId") == cid
    )
    assert events, "no RESERVATION_EXPIRED event for the expired reservation"
    event_id = events[0]["eventId"]

    unsigned = await asyncio.to_thread(
        ce.dlq_cli, env, "replay", event_id, "--wait", "5", CHECKOUT_GATEWAY_AUTH="off"
    )
    assert unsigned.returncode == 1
    assert "401" in unsigned.stderr, unsigned.stderr
    assert "not-from-gateway" in unsigned.stderr, unsigned.stderr

    done = await asyncio.to_thread(ce.dlq_cli, env, "replay", event_id, "--wait", "5")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)["result"]
    assert result["checkout_id"] == cid
    assert {line["state"] for line in result["lines"]} == {"expired"}
    stock = f"/v1/stock/{sku}"
    async with httpx.AsyncClient(base_url=env.inventory.url, timeout=10) as client:
        left = await client.get(stock, headers=signed("GET", stock))
    assert left.json()["available"] == 3
