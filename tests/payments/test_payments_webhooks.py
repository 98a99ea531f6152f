"""Local methods (UPI, iDEAL, Pix): pending -> signed webhook -> authorized; webhooks are
verified, idempotent and out-of-order safe."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import payments_harness as harness
import pytest
from payments_env import Env

import made_ids

pytestmark = pytest.mark.stack

LOCAL = [
    ("upi-in", "upi", "IN", "INR"),
    ("ideal-nl", "ideal", "NL", "EUR"),
    ("pix-br", "pix", "BR", "BRL"),
]


def cid() -> str:
    return f"lm_{made_ids.ref(n=16)}"


async def wait_state(
    client: httpx.AsyncClient, c: str, state: str, within: float = 5.0
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = (await client.get(f"/v1/payments/{c}")).json()
        if body["state"] == state:
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"{c} never reached {state}: {body}")


def sign(secret: str, body: bytes, ts: int | None = None) -> str:
    ts = int(time.time()) if ts is None else ts
    sig = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={sig}"


async def post_signed(
    client: httpx.AsyncClient,
    provider: str,
    secret: str,
    body: bytes,
    header: str = "Sim-Signature",
) -> httpx.Response:
    """``body`` posted to ``provider``'s webhook route, signed under ``secret`` in ``header``."""
    return await client.post(
        f"/v1/webhooks/{provider}", content=body, headers={header: sign(secret, body)}
    )


@pytest.mark.parametrize(("name", "method", "country", "currency"), LOCAL)
async def test_local_method_is_authorized_by_its_webhook_then_captured(
    env: Env, client: httpx.AsyncClient, name: str, method: str, country: str, currency: str
) -> None:
    c = cid()
    env.sim.faults({"kind": "webhook_duplicate", "provider": method})
    r = await client.post(
        "/v1/payments/authorize",
        json={
            "checkout_id": c,
            "amount": 1500,
            "currency": currency,
            "country": country,
            "payment_method": method,
            "payment_method_token": harness.token_for(method),
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "requires_action"
    assert body["provider"] == name
    assert body["action"]["url"]
    await wait_state(client, c, "authorized")
    assert (await client.post(f"/v1/payments/{c}/capture", json={})).json()["state"] == "captured"
    await asyncio.sleep(0.2)  # the duplicate webhooks (authorized + captured) arrive late
    assert (await client.get(f"/v1/payments/{c}")).json()["state"] == "captured"
    row = env.sim.ledger()["checkouts"][c]
    assert (row["authorizations"], row["captures"]) == (1, 1)
    assert env.sim.ledger()["webhooks"]["failed"] == 0


async def test_a_late_authorized_webhook_does_not_undo_a_void(
    env: Env, client: httpx.AsyncClient
) -> None:
    c = cid()
    env.sim.faults({"kind": "webhook_delay", "provider": "upi", "latencyMs": 400})
    r = await client.post(
        "/v1/payments/authorize",
        json={
            "checkout_id": c,
            "amount": 900,
            "currency": "INR",
            "country": "IN",
            "payment_method": "upi",
        },
    )
    assert r.json()["state"] == "requires_action"
    await asyncio.sleep(0.05)  # the customer approved at the PSP; the webhook is still on its way
    r = await client.post(f"/v1/payments/{c}/void", json={})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "voided"
    await asyncio.sleep(0.8)  # payment.authorized and payment.voided both arrive now, late
    assert (await client.get(f"/v1/payments/{c}")).json()["state"] == "voided"
    row = env.sim.ledger()["checkouts"][c]
    assert row["charged"] == 0


async def test_webhook_signature_is_verified(env: Env, client: httpx.AsyncClient) -> None:
    secret = env.creds.values["upi-in"]["webhook-secret"]
    body = json.dumps(
        {"id": "evt_x", "type": "payment.authorized", "data": {"id": "u1", "reference": "nope"}}
    ).encode()
    for header in (
        "",
        "t=1,v1=00",
        sign("wrong-secret", body),
        sign(secret, body, ts=int(time.time()) - 3600),
    ):
        r = await client.post(
            "/v1/webhooks/upi-in", content=body, headers={"Sim-Signature": header}
        )
        assert r.status_code == 401, (header, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert secret not in r.text
    r = await post_signed(client, "upi-in", secret, body)
    assert r.status_code == 200
    assert r.json()["outcome"] == "ignored"  # no such checkout
    r = await post_signed(client, "no-such-psp", secret, body)
    assert r.status_code == 404


async def test_webhooks_are_idempotent_and_stale_ones_are_ignored(
    env: Env, client: httpx.AsyncClient
) -> None:
    c = cid()
    env.sim.admin("POST", "settings", {"autoCompleteMs": -1})
    try:
        r = await client.post(
            "/v1/payments/authorize",
            json={
                "checkout_id": c,
                "amount": 700,
                "currency": "BRL",
                "country": "BR",
                "payment_method": "pix",
            },
        )
        ref = r.json()["psp_reference"]
    finally:
        env.sim.admin("POST", "settings", {"autoCompleteMs": 5})
    secret = env.creds.values["pix-br"]["webhook-secret"]

    async def send(event_id: str, type_: str) -> dict[str, Any]:
        body = json.dumps(
            {"id": event_id, "type": type_, "data": {"id": ref, "reference": c}}
        ).encode()
        r = await post_signed(client, "pix-br", secret, body)
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    assert (await send("e1", "payment.authorized"))["outcome"] == "applied"
    assert (await send("e1", "payment.authorized"))["outcome"] == "duplicate"
    assert (await send("e2", "payment.captured"))["outcome"] == "applied"
    assert (await send("e3", "payment.authorized"))["outcome"] == "stale"  # out of order
    assert (await send("e4", "payment.voided"))["outcome"] == "stale"  # captured can't be voided
    assert (await client.get(f"/v1/payments/{c}")).json()["state"] == "captured"


async def authorize_card(client: httpx.AsyncClient, c: str, amount: int) -> httpx.Response:
    body = {
        "checkout_id": c,
        "amount": amount,
        "currency": "EUR",
        "country": "DE",
        "payment_method": "card",
        "payment_method_token": harness.TOKEN,
    }
    return await client.post("/v1/payments/authorize", json=body)


def stripe_event(event_type: str, pi: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "id": f"evt_{made_ids.ref(n=32)}",
            "object": "event",
            "type": event_type,
            "data": {"object": pi},
        }
    ).encode()


async def test_stripe_signature_and_body_shape(env: Env, client: httpx.AsyncClient) -> None:
    """A PaymentIntent event (data.object) signed in Stripe-Signature, with two v1 during a
    rotation; the Sim-Signature header alone is not Stripe's and is refused."""
    c = cid()
    r = await authorize_card(client, c, 1200)
    assert r.json()["provider"] == "stripe-eu", r.text
    ref = r.json()["psp_reference"]
    assert (await client.post(f"/v1/payments/{c}/capture", json={})).status_code == 200
    pi = {
        "id": ref,
        "object": "payment_intent",
        "status": "canceled",
        "metadata": {"checkout_id": c},
    }
    body = stripe_event("payment_intent.canceled", pi)
    secret = env.creds.values["stripe-eu"]["webhook-secret"]
    refused = await post_signed(client, "stripe-eu", secret, body)
    assert refused.status_code == 401
    rotated = sign("whsec_rotated_away", body) + "," + sign(secret, body).split(",", 1)[1]
    r = await client.post(
        "/v1/webhooks/stripe-eu", content=body, headers={"Stripe-Signature": rotated}
    )
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "stale"  # captured: a late cancel cannot undo it
    assert (await client.get(f"/v1/payments/{c}")).json()["state"] == "captured"


async def test_a_webhook_for_one_provider_never_moves_another_providers_payment(
    env: Env, client: httpx.AsyncClient
) -> None:
    c = cid()
    env.sim.faults({"kind": "decline", "provider": "stripe", "declineClass": "soft", "count": 1})
    r = await authorize_card(client, c, 1300)
    assert r.json()["provider"] == "adyen-eu", r.text
    ref = r.json()["psp_reference"]
    # correctly signed for stripe-eu, naming the Adyen payment's checkout and reference
    pi = {
        "id": ref,
        "object": "payment_intent",
        "status": "canceled",
        "metadata": {"checkout_id": c},
    }
    body = stripe_event("payment_intent.canceled", pi)
    secret = env.creds.values["stripe-eu"]["webhook-secret"]
    r = await post_signed(client, "stripe-eu", secret, body, "Stripe-Signature")
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "ignored"
    assert (await client.get(f"/v1/payments/{c}")).json()["state"] == "authorized"


async def test_adyen_capture_is_pending_until_its_webhook(
    env: Env, client: httpx.AsyncClient
) -> None:
    c = cid()
    env.sim.faults(
        {"kind": "decline", "provider": "stripe", "declineClass": "soft", "count": 1},
        {"kind": "webhook_delay", "provider": "adyen", "latencyMs": 400},
    )
    r = await authorize_card(client, c, 1400)
    assert r.json()["provider"] == "adyen-eu", r.text
    r = await client.post(f"/v1/payments/{c}/capture", json={})
    assert r.json()["state"] == "capture_pending"  # Adyen answered 201 "received"
    body = await wait_state(client, c, "captured")  # the CAPTURE notification
    assert body["captured_amount"] == 1400


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
async def test_3ds_is_an_action_for_the_shopper_completed_by_the_webhook(
    env: Env, client: httpx.AsyncClient, provider: str
) -> None:
    c = cid()
    rules: list[dict[str, Any]] = [{"kind": "three_ds", "provider": provider, "count": 1}]
    if provider == "adyen":
        rules.append({"kind": "decline", "provider": "stripe", "declineClass": "soft", "count": 1})
    env.sim.faults(*rules)
    r = await authorize_card(client, c, 1600)
    body = r.json()
    assert (body["state"], body["provider"]) == ("requires_action", f"{provider}-eu"), r.text
    action_url = (
        body["action"]["redirect_to_url"]["url"] if provider == "stripe" else body["action"]["url"]
    )
    assert "3d" in action_url  # the challenge the shopper's browser is sent to
    await wait_state(client, c, "authorized")  # the shopper passed it: the provider's webhook
    assert (await client.post(f"/v1/payments/{c}/capture", json={})).status_code == 200


async def test_an_asynchronous_capture_failure_then_the_void(
    env: Env, client: httpx.AsyncClient
) -> None:
    c = cid()
    env.sim.faults(
        {"kind": "decline", "provider": "stripe", "declineClass": "soft", "count": 1},
        {"kind": "capture_failure", "provider": "adyen", "operation": "capture", "count": 1},
    )
    assert (await authorize_card(client, c, 1700)).json()["provider"] == "adyen-eu"
    r = await client.post(f"/v1/payments/{c}/capture", json={})
    assert r.json()["state"] == "capture_pending", r.text
    await wait_state(client, c, "capture_failed")  # CAPTURE success=false
    r = await client.post(f"/v1/payments/{c}/void", json={})
    assert r.json()["state"] in ("void_pending", "voided"), r.text
    await wait_state(client, c, "voided")  # CANCELLATION
    row = env.sim.ledger()["checkouts"][c]
    assert (row["captures"], row["charged"]) == (0, 0)


async def test_a_void_while_the_capture_is_pending_refunds_the_late_capture_once(
    env: Env, client: httpx.AsyncClient
) -> None:
    """The checkout gave up on a capture Adyen had accepted: the void cannot cancel it, so it
    is recorded as a release, and the CAPTURE that comes later (delivered twice) is refunded
    once, under the refund id ``late-capture``."""
    c = cid()
    env.sim.faults(
        {"kind": "decline", "provider": "stripe", "declineClass": "soft", "count": 1},
        {"kind": "webhook_delay", "provider": "adyen", "latencyMs": 600},
        {"kind": "webhook_duplicate", "provider": "adyen"},
    )
    assert (await authorize_card(client, c, 2100)).json()["provider"] == "adyen-eu"
    r = await client.post(f"/v1/payments/{c}/capture", json={})
    assert r.json()["state"] == "capture_pending", r.text
    r = await client.post(f"/v1/payments/{c}/void", json={})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "capture_pending"  # recorded as a release, not a 409
    body = await wait_state(client, c, "refunded")  # CAPTURE, the refund, then REFUND
    assert body["refunded_amount"] == body["captured_amount"] == 2100
    again = await client.post("/v1/payments/reconcile", json={"pending_after_seconds": 0})
    assert again.json()["released_late"] == 0, again.text
    (adyen,) = [p for p in env.sim.payments(c) if p["provider"] == "adyen"]
    history = adyen["history"]
    assert [h for h in history if h.startswith("refunded")] == ["refunded:2100"], history
    row = env.sim.ledger()["checkouts"][c]
    assert (row["captures"], row["refunds"]) == (1, 1)


async def test_rate_limits_and_transient_errors_are_retried_with_the_same_key(
    env: Env, client: httpx.AsyncClient
) -> None:
    c = cid()
    env.sim.faults(
        {"kind": "rate_limit", "provider": "stripe", "operation": "authorize", "count": 2}
    )
    r = await authorize_card(client, c, 1800)
    assert (r.json()["state"], r.json()["provider"]) == ("authorized", "stripe-eu"), r.text
    c2 = cid()
    env.sim.faults(
        {"kind": "decline", "provider": "stripe", "declineClass": "soft", "count": 1},
        {"kind": "transient_5xx", "provider": "adyen", "operation": "authorize", "count": 1},
    )
    r = await authorize_card(client, c2, 1900)
    assert (r.json()["state"], r.json()["provider"]) == ("authorized", "adyen-eu"), r.text
    assert env.sim.ledger()["checkouts"][c2]["authorizations"] == 1
