"""The shopper's return from 3-D Secure through the edge, on the real stack (two regions, each
with its gateway, orders, payments; real PostgreSQL, Redis, Temporal; the PSP simulated).

``POST /v1/checkouts/{id}/payment-details`` is a write: the client's token, its limits, the
market's writer region (forwarded from the other one); the writer's orders service lets only
the checkout's owner complete it, payments reads the PaymentIntent back, and the saga, told by
payments' signal, captures.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import gateway_harness as gh
import httpx
import pytest
import services_harness as h
from gateway_harness import Fleet

pytestmark = pytest.mark.stack


@pytest.fixture(params=["stripe", "adyen"])
def provider(fleet: Fleet, request: pytest.FixtureRequest) -> Iterator[str]:
    """The next DE card needs 3-D Secure at this provider (Adyen: Stripe declines it first);
    nobody but the test completes the challenge, so only the shopper's return can authorize
    (Stripe's webhook, which the simulator sends when the shopper passes, is held back 10 min;
    Adyen's captures are confirmed by webhook, so its webhooks flow)."""
    name = str(request.param)
    rules: list[dict[str, Any]] = [
        {"kind": "three_ds", "provider": name, "operation": "authorize", "count": 1}
    ]
    if name == "stripe":
        rules.append({"kind": "webhook_delay", "provider": "stripe", "latencyMs": 600_000})
    else:
        rules.append({"kind": "decline", "provider": "stripe", "declineClass": "soft", "count": 1})
    fleet.sim.admin("POST", "settings", {"autoCompleteMs": -1})
    fleet.sim.faults(*rules)
    try:
        yield name
    finally:
        fleet.sim.admin("DELETE", "faults")
        fleet.sim.admin("POST", "settings", {"autoCompleteMs": 5})


def wait_order(c: httpx.Client, url: str, headers: dict[str, str], state: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    last: Any = None
    while time.monotonic() < deadline:
        r = c.get(url, headers=headers)
        last = r.text
        if r.status_code == 200 and r.json()["state"] == state:
            return dict(r.json())
        time.sleep(0.2)
    raise AssertionError(f"{url} never reached {state}: {last}")


def test_the_shopper_back_from_3ds_completes_the_checkout_through_either_gateway(
    fleet: Fleet, provider: str
) -> None:
    fleet.route({}, {}, 1)
    fleet.stock("tee", 1000)
    cid = f"co-{uuid.uuid4().hex[:10]}"
    owner = fleet.keys.auth("shopper-3ds")
    eu, us = fleet.gateways[gh.EU], fleet.gateways[gh.US]
    details = f"/v1/checkouts/{cid}/payment-details"
    back = {"market": "DE", "details": {}}
    with httpx.Client(timeout=60) as c:
        placed = c.post(f"{eu}/v1/checkouts", json=gh.checkout_body(cid, "DE"), headers=owner)
        assert placed.status_code == 201, placed.text
        assert placed.json()["payment"]["state"] == "requires_action", placed.text
        [charge] = [p for p in fleet.charges(cid) if p["status"] == "pending"]
        assert charge["provider"] == provider, charge

        # no token: 401 at the edge; another principal: 404 (nothing about the checkout)
        h.assert_problem(c.post(f"{us}{details}", json=back), 401)
        other = c.post(f"{us}{details}", json=back, headers=fleet.keys.auth("someone-else"))
        h.assert_problem(other, 404)
        h.assert_problem(c.post(f"{eu}{details}", json={"details": {}}, headers=owner), 422)

        came_back = fleet.sim.admin(
            "POST", f"shopper/{charge['id']}/complete", {"outcome": "authorized"}
        )
        if provider == "adyen":  # what the browser brings back to the return URL
            back = {**back, "details": {"redirectResult": came_back["redirectResult"]}}
        # back through the other region's gateway: forwarded to DE's writer, signed there
        done = c.post(f"{us}{details}", json=back, headers=owner)
        assert done.status_code == 200, done.text
        assert done.headers["x-checkout-served-by"] == gh.EU
        assert done.json() == {"checkout_id": cid, "state": "authorized", "action": None}
        if provider == "stripe":
            order = wait_order(c, f"{eu}/v1/orders/{cid}", owner, "fulfilment_requested")
            assert order["total"] == placed.json()["total"]
    # the saga, signalled by payments, captured at once (Adyen: the capture request reached
    # Adyen; its CAPTURE notification has no route to payments in this fleet, so the order
    # itself is followed to the end only for Stripe, whose capture answers synchronously)
    deadline = time.monotonic() + 10
    while not [p for p in fleet.charges(cid) if p["captured"]]:
        assert time.monotonic() < deadline, fleet.charges(cid)
        time.sleep(0.1)
    [charge] = [p for p in fleet.charges(cid) if p["captured"]]  # one charge, in full
    assert (charge["status"], charge["captured"]) == ("captured", charge["amount"]), charge
    assert charge["provider"] == provider
    assert gh.metric(us, "checkout_gateway_requests_total", market="DE", decision="forwarded")


def test_details_after_the_market_moved_complete_where_the_checkout_was_created(
    fleet: Fleet,
) -> None:
    """DE moves from EU to US while the shopper is at the issuer. The details reach US (the new
    writer: directly, or forwarded by EU's gateway), whose orders service holds no such
    checkout; US's gateway finds it at EU, one of DE's read regions, where the payment and
    the saga waiting for it live: authorized there, captured by EU's saga. A checkout that
    exists nowhere stays 404."""
    fleet.route({}, {}, 1)
    fleet.stock("tee", 1000)
    fleet.sim.admin("POST", "settings", {"autoCompleteMs": -1})
    fleet.sim.faults(
        {"kind": "three_ds", "provider": "stripe", "operation": "authorize", "count": 1},
        {"kind": "webhook_delay", "provider": "stripe", "latencyMs": 600_000},
    )
    cid = f"co-{uuid.uuid4().hex[:10]}"
    owner = fleet.keys.auth("shopper-moved")
    eu, us = fleet.gateways[gh.EU], fleet.gateways[gh.US]
    back = {"market": "DE", "details": {}}
    try:
        with httpx.Client(timeout=60) as c:
            placed = c.post(f"{eu}/v1/checkouts", json=gh.checkout_body(cid, "DE"), headers=owner)
            assert placed.status_code == 201, placed.text
            assert placed.json()["payment"]["state"] == "requires_action", placed.text
            [charge] = fleet.charges(cid)
            fleet.route({"DE": gh.US}, {}, 2)  # DE moved while the shopper was at the issuer
            fleet.sim.admin("POST", f"shopper/{charge['id']}/complete", {"outcome": "authorized"})

            nowhere = f"co-{uuid.uuid4().hex[:10]}"
            gone = c.post(f"{us}/v1/checkouts/{nowhere}/payment-details", json=back, headers=owner)
            h.assert_problem(gone, 404)
            other = c.post(
                f"{us}/v1/checkouts/{cid}/payment-details",
                json=back,
                headers=fleet.keys.auth("someone-else"),
            )
            h.assert_problem(other, 404)  # found nowhere for another principal either

            done = c.post(f"{eu}/v1/checkouts/{cid}/payment-details", json=back, headers=owner)
            assert done.status_code == 200, done.text
            assert done.headers["x-checkout-served-by"] == gh.EU  # where the checkout lives
            assert done.json() == {"checkout_id": cid, "state": "authorized", "action": None}
            wait_order(c, f"{eu}/v1/orders/{cid}", owner, "fulfilment_requested")
        [captured] = [p for p in fleet.charges(cid) if p["captured"]]
        assert captured["captured"] == captured["amount"]
        assert gh.metric(us, "checkout_gateway_origin_lookups_total", outcome="found") >= 1
        assert gh.metric(us, "checkout_gateway_origin_lookups_total", outcome="nowhere") >= 2
    finally:
        fleet.route({}, {}, 3)
        fleet.sim.admin("DELETE", "faults")
        fleet.sim.admin("POST", "settings", {"autoCompleteMs": 5})
