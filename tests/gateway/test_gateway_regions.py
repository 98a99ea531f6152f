"""Two regions on the real stack: each runs payments, pricing, inventory, orders, cart and its
gateway as real processes (PostgreSQL, Redis and Temporal real, one Temporal namespace per
region); both share the PSP simulator and one routing file (the ConfigMap every region mounts).

* a write for a market sent to the wrong region is forwarded to the writer and succeeds once;
  retries through either region (also concurrent ones) charge the customer once (PSP ledger);
* a move of the market: Fencing -> 503 + Retry-After naming the writer, then the new writer
  gets the writes, and no request reaches the old writer's services afterwards (their metrics).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

import gateway_harness as gh
import httpx
import pytest
import services_harness as h
from gateway_harness import Fleet

import made_ids

pytestmark = pytest.mark.stack


def new_sku(fleet: Fleet) -> str:
    """A catalog SKU (pricing knows ``tee`` and ``mug``), well stocked in both regions."""
    fleet.stock("tee", 1000)
    return "tee"


def test_a_write_sent_to_the_wrong_region_is_forwarded_and_charged_once(fleet: Fleet) -> None:
    fleet.route({}, {}, 1)
    sku = new_sku(fleet)
    cid = f"co-{made_ids.ref(n=10)}"
    body = gh.checkout_body(cid, "US", sku)
    key = {"Idempotency-Key": f"k-{cid}", **fleet.keys.auth("shopper-us")}
    eu_before = fleet.checkouts_seen(gh.EU)
    with httpx.Client(timeout=60) as c:
        first = c.post(f"{fleet.gateways[gh.EU]}/v1/checkouts", json=body, headers=key)
        assert first.status_code == 201, first.text
        assert first.headers["x-checkout-served-by"] == gh.US
        assert first.json()["state"] == "placed"
        # the client retries, through the other region and through the first one again
        retries = [
            c.post(f"{fleet.gateways[region]}/v1/checkouts", json=body, headers=key)
            for region in (gh.US, gh.EU, gh.US)
        ]
    for retry in retries:
        assert retry.status_code == 201, retry.text
        assert retry.json() == first.json()
        assert retry.headers.get("idempotent-replayed") == "true"
    charges = fleet.charges(cid)
    assert len(charges) == 1, charges
    assert charges[0]["amount"] == first.json()["total"]
    assert charges[0]["currency"] == "USD"
    assert fleet.checkouts_seen(gh.EU) == eu_before, "the EU orders service saw a US write"
    eu_gw = fleet.gateways[gh.EU]
    assert gh.metric(eu_gw, "checkout_gateway_requests_total", market="US", decision="forwarded")
    assert gh.metric(eu_gw, "checkout_gateway_forward_seconds_count", peer=gh.US) >= 2


def test_concurrent_duplicates_through_both_regions_charge_once(fleet: Fleet) -> None:
    fleet.route({}, {}, 1)
    sku = new_sku(fleet)
    cid = f"co-{made_ids.ref(n=10)}"
    body = gh.checkout_body(cid, "DE", sku)
    headers = {"Idempotency-Key": f"k-{cid}", **fleet.keys.auth("shopper-de")}

    async def one(client: httpx.AsyncClient, region: str) -> httpx.Response:
        return await client.post(
            f"{fleet.gateways[region]}/v1/checkouts", json=body, headers=headers
        )

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(
                *(one(client, region) for region in (gh.US, gh.EU, gh.US, gh.EU))
            )

    answers = asyncio.run(burst())
    codes = sorted(r.status_code for r in answers)
    assert set(codes) <= {201, 409}, [(r.status_code, r.text) for r in answers]
    assert 201 in codes
    for r in answers:
        assert r.headers["x-checkout-served-by"] == gh.EU
        if r.status_code == 409:
            assert r.headers["content-type"].startswith("application/problem+json")
    # after the first finished, a retry anywhere gets the stored answer
    with httpx.Client(timeout=60) as c:
        again = c.post(f"{fleet.gateways[gh.US]}/v1/checkouts", json=body, headers=headers)
    assert again.status_code == 201, again.text
    assert len(fleet.charges(cid)) == 1, fleet.charges(cid)


def test_a_move_fences_then_the_new_writer_takes_every_write(fleet: Fleet) -> None:
    sku = new_sku(fleet)
    auth = fleet.keys.auth("shopper-move")
    gw = fleet.gateways

    def post(region: str, cid: str) -> httpx.Response:
        headers = {"Idempotency-Key": f"k-{cid}", **auth}
        return httpx.post(
            f"{gw[region]}/v1/checkouts",
            json=gh.checkout_body(cid, "US", sku),
            headers=headers,
            timeout=60,
        )

    try:
        fleet.route({}, {}, 1)
        before = post(gh.EU, f"co-{made_ids.ref(n=10)}")
        assert before.status_code == 201, before.text
        assert before.headers["x-checkout-served-by"] == gh.US
        # the operator fences US's writer (epoch 2): every region answers 503 + Retry-After
        fleet.route({}, {"US": "Fencing"}, 2)
        for region in (gh.EU, gh.US):
            fenced = post(region, f"co-{made_ids.ref(n=10)}")
            body = h.assert_problem(fenced, 503)
            assert body["writer"] == gh.US
            assert int(fenced.headers["retry-after"]) >= 1
        us_seen = fleet.checkouts_seen(gh.US)
        # the new writer (EU) holds the market at epoch 3: writes go there, from both gateways
        fleet.route({"US": gh.EU}, {}, 3)
        placed = []
        for region in (gh.US, gh.EU, gh.US):
            cid = f"co-{made_ids.ref(n=10)}"
            resp = post(region, cid)
            assert resp.status_code == 201, resp.text
            assert resp.headers["x-checkout-served-by"] == gh.EU
            placed.append(cid)
        time.sleep(0.5)
        assert fleet.checkouts_seen(gh.US) == us_seen, "a write reached the fenced region"
        for cid in placed:
            charges = fleet.charges(cid)
            assert len(charges) == 1, charges
        us_gw = gw[gh.US]
        assert gh.metric(
            us_gw, "checkout_gateway_requests_total", market="US", decision="forwarded"
        )
        assert gh.metric(us_gw, "checkout_gateway_rejections_total", reason="market-fencing")
    finally:
        fleet.route({}, {}, 4)


def test_a_provider_reaches_the_payments_webhook_through_the_edge(fleet: Fleet) -> None:
    """No JWT (providers have none): the gateway passes the body byte for byte and the
    provider's signature header to payments, which verifies it."""
    assert fleet.creds is not None
    secret = fleet.creds.values["stripe-eu"]["webhook-secret"]
    event = {
        "id": f"evt_{made_ids.ref(n=32)}",
        "object": "event",
        "type": "payment_intent.canceled",
        "data": {
            "object": {
                "id": "pi_x",
                "object": "payment_intent",
                "status": "canceled",
                "metadata": {"checkout_id": f"nobody-{made_ids.ref(n=8)}"},
            }
        },
    }
    body = json.dumps(event).encode()
    ts = int(time.time())
    sig = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    url = f"{fleet.gateways[gh.EU]}/v1/webhooks/stripe-eu"
    ok = httpx.post(url, content=body, headers={"Stripe-Signature": f"t={ts},v1={sig}"})
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"outcome": "ignored", "held": False}  # verified, no payment of ours
    assert "x-checkout-webhook-unheld" not in ok.headers  # internal: not for the provider
    forged = httpx.post(url, content=body, headers={"Stripe-Signature": f"t={ts},v1={'0' * 64}"})
    assert forged.status_code == 401, forged.text
