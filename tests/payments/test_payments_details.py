"""POST /v1/payments/{id}/details: the shopper is back from 3-D Secure (real PostgreSQL/Redis,
the simulator as Adyen and Stripe; nobody completes the challenge but the test's shopper)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from payments_env import Env
from test_payments_webhooks import authorize_card

import made_ids

pytestmark = pytest.mark.stack


def cid() -> str:
    return f"dt_{made_ids.ref(n=16)}"


@pytest.fixture
async def client(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    env.sim.admin("POST", "settings", {"autoCompleteMs": -1})  # the shopper is the test
    try:
        async with httpx.AsyncClient(base_url=env.url, timeout=30) as c:
            yield c
    finally:
        env.sim.admin("POST", "settings", {"autoCompleteMs": 5})


async def challenged(env: Env, client: httpx.AsyncClient, provider: str) -> tuple[str, str]:
    rules: list[dict[str, Any]] = [{"kind": "three_ds", "provider": provider, "count": 1}]
    if provider == "adyen":
        rules.append({"kind": "decline", "provider": "stripe", "declineClass": "soft", "count": 1})
    env.sim.faults(*rules)
    c = cid()
    r = await authorize_card(client, c, 2100)
    body = r.json()
    assert (body["state"], body["provider"]) == ("requires_action", f"{provider}-eu"), r.text
    return c, body["psp_reference"]


def shopper(env: Env, psp_reference: str, outcome: str = "authorized") -> dict[str, Any]:
    """The shopper's browser at the issuer, then back at our return URL with this."""
    back: dict[str, Any] = env.sim.admin(
        "POST", f"shopper/{psp_reference}/complete", {"outcome": outcome}
    )
    return back


async def details(
    client: httpx.AsyncClient, c: str, body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return await client.post(f"/v1/payments/{c}/details", json=body, headers=headers)


async def test_adyen_details_authorise_the_payment_once(
    env: Env, client: httpx.AsyncClient
) -> None:
    c, ref = await challenged(env, client, "adyen")
    back = shopper(env, ref)
    body = {"details": {"redirectResult": back["redirectResult"]}}
    key = f"k-{made_ids.ref(n=32)}"
    r = await details(client, c, body, key)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "authorized"
    again = await details(client, c, body, key)
    assert (again.status_code, again.headers.get("idempotent-replayed")) == (200, "true")
    assert again.json() == r.json()
    other = await details(client, c, {"details": {"redirectResult": "something-else"}}, key)
    assert other.status_code == 422, other.text  # same key, another body
    # without a key: the payment is authorized already, the provider is not asked again
    assert (await details(client, c, body)).json()["state"] == "authorized"
    assert (await client.post(f"/v1/payments/{c}/capture", json={})).status_code == 200
    [p] = [p for p in env.sim.payments(c) if p["id"] == ref]
    assert p["history"].count("authorized") == 1


async def test_adyen_refused_challenge_is_a_decline(env: Env, client: httpx.AsyncClient) -> None:
    c, ref = await challenged(env, client, "adyen")
    back = shopper(env, ref, "declined")
    r = await details(client, c, {"details": {"redirectResult": back["redirectResult"]}})
    assert r.status_code == 402, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert (await client.get(f"/v1/payments/{c}")).json()["state"] == "declined"


async def test_details_adyen_refuses_are_a_422_and_change_nothing(
    env: Env, client: httpx.AsyncClient
) -> None:
    c, _ = await challenged(env, client, "adyen")
    r = await details(client, c, {"details": {"redirectResult": "forged"}})
    assert r.status_code == 422, r.text
    assert r.json()["type"].endswith("details-rejected")
    empty = await details(client, c, {"details": {}})
    assert (empty.status_code, empty.json()["field"]) == (422, "details")
    unknown_field = await details(client, c, {"details": {"cardNumber": "x"}})
    assert unknown_field.status_code == 422
    assert (await client.get(f"/v1/payments/{c}")).json()["state"] == "requires_action"


async def test_stripe_payment_intent_is_read_back_after_the_challenge(
    env: Env, client: httpx.AsyncClient
) -> None:
    c, ref = await challenged(env, client, "stripe")
    early = await details(client, c, {})
    assert early.json()["state"] == "requires_action", early.text  # the shopper is not back
    back = shopper(env, ref)
    assert back["payment_intent"] == ref
    r = await details(client, c, {})
    assert (r.status_code, r.json()["state"]) == (200, "authorized"), r.text
    c2, ref2 = await challenged(env, client, "stripe")
    shopper(env, ref2, "declined")
    failed = await details(client, c2, {})
    assert failed.status_code == 402, failed.text
    assert failed.json()["decline_class"] == "soft_decline"
