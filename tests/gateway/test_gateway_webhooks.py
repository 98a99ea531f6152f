"""A provider's notification reaches the region that holds the payment, on the real stack (two
regions, each with its gateway, orders and payments; real PostgreSQL, Redis, Temporal; the PSP
simulated).

A provider has one webhook URL: its notifications reach one region's gateway. Here a DE
checkout is paid at Adyen in EU (the simulator sends Adyen's notifications nowhere, so the
capture stays ``capture_pending``), and its signed CAPTURE / CAPTURE_FAILED notification is
posted to US's gateway. US's payments holds no such payment; its gateway passes the body byte
for byte to EU's gateway, whose payments verifies the signature and applies it. While EU does
not answer, US answers 503 (the provider delivers it again later) and nothing is lost.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import gateway_harness as gh
import httpx
import payments_harness as ph
import pytest
import services_harness as h
from gateway_harness import Fleet

from checkout_services.common import principal
from checkout_services.payments import webhook_schemes

pytestmark = pytest.mark.stack

ADYEN = "adyen-eu"


@pytest.fixture(params=["CAPTURE", "CAPTURE_FAILED"])
def code(fleet: Fleet, request: pytest.FixtureRequest) -> Iterator[str]:
    """The next DE card is declined (soft) by Stripe, so Adyen authorizes it; its capture
    succeeds or fails at Adyen (then the notification says CAPTURE_FAILED)."""
    fleet.route({}, {}, 1)
    rules: list[dict[str, Any]] = [
        {"kind": "decline", "provider": "stripe", "declineClass": "soft", "count": 1}
    ]
    if request.param == "CAPTURE_FAILED":
        rules.append(
            {"kind": "capture_failure", "provider": "adyen", "operation": "capture", "count": 1}
        )
    fleet.sim.faults(*rules)
    try:
        yield str(request.param)
    finally:
        fleet.route({}, {}, 1)
        fleet.sim.admin("DELETE", "faults")


def payment_state(fleet: Fleet, region: str, cid: str) -> str:
    """The payment as the region's payments service holds it (a service's signed read)."""
    path = f"/v1/payments/{cid}"
    headers = principal.signed_headers(
        gh.INTERNAL_KEY.encode(), "GET", path, principal.internal("test"), b""
    )
    r = httpx.get(f"{fleet.regions[region].payments.url}{path}", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return str(r.json()["state"])


def wait_state(fleet: Fleet, region: str, cid: str, states: set[str]) -> str:
    deadline = time.monotonic() + 30
    state = ""
    while time.monotonic() < deadline:
        state = payment_state(fleet, region, cid)
        if state in states:
            return state
        time.sleep(0.2)
    raise AssertionError(f"payment {cid} in {region} never reached {states}: {state}")


def luhn_valid(digits: str) -> str:
    """``digits`` and the check digit that makes the whole pass the Luhn check."""
    total = 0
    for i, d in enumerate(int(c) for c in reversed(digits)):  # doubled: every other from here
        total += d if i % 2 else (d * 2 - 9 if d > 4 else d * 2)
    return digits + str(-total % 10)


def notification(fleet: Fleet, cid: str, charge: dict[str, Any], code: str) -> bytes:
    """Adyen's notification about the charge's capture, signed with the account's HMAC key."""
    assert fleet.creds is not None
    item: dict[str, Any] = {
        "additionalData": {},
        "amount": {"value": charge["amount"], "currency": "EUR"},
        "eventCode": code,
        "eventDate": "2026-12-08T00:00:00+00:00",
        "merchantAccountCode": ph.PROVIDERS[ADYEN]["account"],
        "merchantReference": cid,
        "originalReference": charge["id"],
        # the capture's own reference, made to pass the Luhn check like a card number: the
        # edge's card-number guard must not refuse a provider's signed notification
        "pspReference": luhn_valid("4" + str(uuid.uuid4().int)[:14]),
        "reason": "",
        "success": "true",
    }
    key = fleet.creds.values[ADYEN]["webhook-secret"]
    item["additionalData"]["hmacSignature"] = webhook_schemes.adyen_signature(key, item)
    return json.dumps(
        {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}
    ).encode()


def test_a_notification_for_another_regions_payment_is_applied_there(
    fleet: Fleet, code: str
) -> None:
    fleet.stock("tee", 1000)
    cid = f"co-{uuid.uuid4().hex[:10]}"
    eu, us = fleet.gateways[gh.EU], fleet.gateways[gh.US]
    owner = fleet.keys.auth("shopper-hook")
    placed = httpx.post(
        f"{eu}/v1/checkouts", json=gh.checkout_body(cid, "DE"), headers=owner, timeout=60
    )
    assert placed.status_code == 201, placed.text
    [charge] = [p for p in fleet.charges(cid) if p["provider"] == "adyen"]
    # the saga asked Adyen to capture; Adyen's word has not come: capture_pending in EU
    assert wait_state(fleet, gh.EU, cid, {"capture_pending"}) == "capture_pending"
    body = notification(fleet, cid, charge, code)
    url = f"{us}/v1/webhooks/{ADYEN}"
    held_before = gh.metric(us, "checkout_gateway_webhook_lookups_total", outcome="held")
    lost_before = gh.metric(us, "checkout_gateway_webhook_lookups_total", outcome="unanswered")

    # EU's gateway does not answer: 503, the provider delivers it again later
    dead = f"http://127.0.0.1:{h.free_port()}"
    gh.write_atomically(fleet.routing, gh.routing_doc({**fleet.gateways, gh.EU: dead}, {}, {}, 2))
    down = httpx.post(url, content=body, timeout=60)
    h.assert_problem(down, 503)
    assert "x-checkout-webhook-unheld" not in down.headers
    assert payment_state(fleet, gh.EU, cid) == "capture_pending"
    lost = gh.metric(us, "checkout_gateway_webhook_lookups_total", outcome="unanswered")
    assert lost == lost_before + 1

    # EU is back: the same delivery, byte for byte, is applied where the payment is
    fleet.route({}, {}, 3)
    for _ in range(2):  # Adyen delivers at least once: a second delivery changes nothing
        ok = httpx.post(url, content=body, timeout=60)
        assert ok.status_code == 200, ok.text
        assert ok.text == "[accepted]"
        assert ok.headers["x-checkout-served-by"] == gh.EU
        assert "x-checkout-webhook-unheld" not in ok.headers
    held = gh.metric(us, "checkout_gateway_webhook_lookups_total", outcome="held")
    assert held == held_before + 2
    if code == "CAPTURE":
        assert wait_state(fleet, gh.EU, cid, {"captured"}) == "captured"
        return
    # the saga, signalled, compensates: the authorization is cancelled at Adyen (whose
    # CANCELLATION notification goes nowhere here: void_pending), not left open
    wait_state(fleet, gh.EU, cid, {"void_pending", "voided"})
    deadline = time.monotonic() + 30
    while [p["status"] for p in fleet.charges(cid) if p["id"] == charge["id"]] != ["voided"]:
        assert time.monotonic() < deadline, fleet.charges(cid)
        time.sleep(0.2)
