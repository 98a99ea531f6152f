"""The simulator keeps each provider's idempotency rules as the design notes state them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import payments_harness as harness
import pytest

KEY = "sk_test_sim_" + uuid.uuid4().hex
ADYEN_KEY = "adyen_" + uuid.uuid4().hex


@pytest.fixture
async def http(sim: harness.Sim) -> AsyncIterator[httpx.AsyncClient]:
    sim.admin(
        "POST",
        "accounts",
        {
            "accounts": [
                {"provider": "stripe", "account": "acct_sim", "apiKey": KEY, "webhookSecret": "w"},
                {
                    "provider": "adyen",
                    "account": "SimShop",
                    "apiKey": ADYEN_KEY,
                    "webhookSecret": "w",
                },
            ]
        },
    )
    async with httpx.AsyncClient(base_url=sim.url, timeout=10) as c:
        yield c


def pi(ref: str, amount: int = 1000) -> dict[str, str]:
    return {
        "amount": str(amount),
        "currency": "eur",
        "confirm": "true",
        "capture_method": "manual",
        "payment_method": "pm_card_visa",
        "metadata[checkout_id]": ref,
    }


def stripe_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}", "Idempotency-Key": key}


async def test_stripe_replays_the_first_response_and_refuses_other_params(
    sim: harness.Sim, http: httpx.AsyncClient
) -> None:
    ref, key = uuid.uuid4().hex, uuid.uuid4().hex
    first = await http.post(
        "/eu/stripe/v1/payment_intents", data=pi(ref), headers=stripe_headers(key)
    )
    assert first.status_code == 200
    assert first.json()["status"] == "requires_capture"
    again = await http.post(
        "/eu/stripe/v1/payment_intents", data=pi(ref), headers=stripe_headers(key)
    )
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    # Stripe keys are per account, not per endpoint
    other_ep = await http.post(
        "/us/stripe/v1/payment_intents", data=pi(ref), headers=stripe_headers(key)
    )
    assert other_ep.json()["id"] == first.json()["id"]
    changed = await http.post(
        "/eu/stripe/v1/payment_intents", data=pi(ref, 2000), headers=stripe_headers(key)
    )
    assert changed.status_code == 400
    assert changed.json()["error"]["type"] == "idempotency_error"
    assert sim.ledger()["checkouts"][ref]["authorizations"] == 1


async def test_stripe_stores_a_5xx_and_concurrent_use_is_409(
    sim: harness.Sim, http: httpx.AsyncClient
) -> None:
    ref, key = uuid.uuid4().hex, uuid.uuid4().hex
    sim.faults({"kind": "error_5xx", "provider": "stripe", "afterCharge": True, "count": 1})
    assert (
        await http.post("/eu/stripe/v1/payment_intents", data=pi(ref), headers=stripe_headers(key))
    ).status_code == 500
    replay = await http.post(
        "/eu/stripe/v1/payment_intents", data=pi(ref), headers=stripe_headers(key)
    )
    assert replay.status_code == 500  # the first response of an endpoint that ran, 5xx included
    assert sim.ledger()["checkouts"][ref]["authorizations"] == 1
    # a 5xx before anything ran is not saved: the same key runs the request
    ref2, key3 = uuid.uuid4().hex, uuid.uuid4().hex
    sim.faults({"kind": "error_5xx", "provider": "stripe", "count": 1})
    assert (
        await http.post(
            "/eu/stripe/v1/payment_intents", data=pi(ref2), headers=stripe_headers(key3)
        )
    ).status_code == 500
    again = await http.post(
        "/eu/stripe/v1/payment_intents", data=pi(ref2), headers=stripe_headers(key3)
    )
    assert again.status_code == 200
    assert sim.ledger()["checkouts"][ref2]["authorizations"] == 1
    sim.faults({"kind": "latency", "provider": "stripe", "latencyMs": 300})
    key2 = uuid.uuid4().hex
    first = asyncio.create_task(
        http.post("/eu/stripe/v1/payment_intents", data=pi(ref), headers=stripe_headers(key2))
    )
    await asyncio.sleep(0.1)
    second = await http.post(
        "/eu/stripe/v1/payment_intents", data=pi(ref), headers=stripe_headers(key2)
    )
    assert second.status_code == 409
    assert (await first).status_code == 200


async def test_stripe_keys_expire_after_24_hours(sim: harness.Sim, http: httpx.AsyncClient) -> None:
    ref, key = uuid.uuid4().hex, uuid.uuid4().hex
    one = await http.post(
        "/eu/stripe/v1/payment_intents", data=pi(ref), headers=stripe_headers(key)
    )
    sim.admin("POST", "clock", {"advanceSeconds": 23 * 3600})
    two = await http.post(
        "/eu/stripe/v1/payment_intents", data=pi(ref), headers=stripe_headers(key)
    )
    assert two.json()["id"] == one.json()["id"]
    sim.admin("POST", "clock", {"advanceSeconds": 2 * 3600})
    three = await http.post(
        "/eu/stripe/v1/payment_intents", data=pi(ref), headers=stripe_headers(key)
    )
    sim.admin("POST", "clock", {"advanceSeconds": -25 * 3600})
    assert three.json()["id"] != one.json()["id"]  # a new charge: keys live >= 24 h, not forever


def adyen(ref: str, value: int = 1000) -> dict[str, object]:
    return {
        "merchantAccount": "SimShop",
        "amount": {"value": value, "currency": "EUR"},
        "reference": ref,
        "paymentMethod": {"type": "scheme", "encryptedCardNumber": "adyenjs_0_1_25$x"},
        "returnUrl": "https://shop.example/return",
    }


async def test_adyen_keys_are_per_regional_endpoint_and_at_most_64_chars(
    sim: harness.Sim, http: httpx.AsyncClient
) -> None:
    ref, key = uuid.uuid4().hex, uuid.uuid4().hex
    h = {"X-API-Key": ADYEN_KEY, "Idempotency-Key": key}
    eu1 = (await http.post("/eu/adyen/v71/payments", json=adyen(ref), headers=h)).json()
    eu2 = (await http.post("/eu/adyen/v71/payments", json=adyen(ref), headers=h)).json()
    assert eu1["resultCode"] == "Authorised"
    assert eu2["pspReference"] == eu1["pspReference"]
    us = (await http.post("/us/adyen/v71/payments", json=adyen(ref), headers=h)).json()
    assert us["pspReference"] != eu1["pspReference"]  # NOT deduplicated across endpoints
    assert sim.ledger()["checkouts"][ref]["authorizations"] == 2
    long_key = await http.post(
        "/eu/adyen/v71/payments",
        json=adyen(ref),
        headers={"X-API-Key": ADYEN_KEY, "Idempotency-Key": "k" * 65},
    )
    assert long_key.status_code == 422
    other = await http.post("/eu/adyen/v71/payments", json=adyen(ref, 5), headers=h)
    assert other.status_code == 422
    # a capture must go to the endpoint that authorized
    cap = {
        "merchantAccount": "SimShop",
        "amount": {"value": 1000, "currency": "EUR"},
        "reference": ref,
    }
    wrong = await http.post(
        f"/us/adyen/v71/payments/{eu1['pspReference']}/captures",
        json=cap,
        headers={"X-API-Key": ADYEN_KEY},
    )
    assert wrong.status_code == 422
    right = await http.post(
        f"/eu/adyen/v71/payments/{eu1['pspReference']}/captures",
        json=cap,
        headers={"X-API-Key": ADYEN_KEY},
    )
    assert right.status_code == 201
    assert sorted(p["status"] for p in sim.payments(ref)) == ["authorized", "captured"]
    # Adyen's Checkout API has no GET for payments: neither has the simulator
    for path in ("/eu/adyen/v71/payments", f"/eu/adyen/v71/payments/{eu1['pspReference']}"):
        got = await http.get(path, params={"merchantAccount": "SimShop", "reference": ref})
        assert got.status_code in (404, 405), (path, got.status_code)


async def test_faults_by_count_and_seeded_probability(
    sim: harness.Sim, http: httpx.AsyncClient
) -> None:
    sim.faults({"kind": "decline", "provider": "stripe", "declineClass": "fraud", "count": 2})
    codes = [
        (
            await http.post(
                "/eu/stripe/v1/payment_intents",
                data=pi(uuid.uuid4().hex),
                headers=stripe_headers(uuid.uuid4().hex),
            )
        ).status_code
        for _ in range(4)
    ]
    assert codes == [402, 402, 200, 200]
    patterns = []
    for _ in range(2):
        sim.faults({"kind": "error_5xx", "provider": "stripe", "probability": 0.5, "seed": 11})
        patterns.append(
            [
                (
                    await http.post(
                        "/eu/stripe/v1/payment_intents",
                        data=pi(uuid.uuid4().hex),
                        headers=stripe_headers(uuid.uuid4().hex),
                    )
                ).status_code
                for _ in range(20)
            ]
        )
    assert patterns[0] == patterns[1]  # same seed, same faults
    assert 3 < patterns[0].count(500) < 17


async def test_bad_admin_input_is_refused(sim: harness.Sim, http: httpx.AsyncClient) -> None:
    r = await http.post("/_sim/faults", json={"rules": [{"kind": "meteor"}]})
    assert r.status_code == 422
    r = await http.post(
        "/eu/stripe/v1/payment_intents", data=pi("x"), headers={"Authorization": "Bearer nope"}
    )
    assert r.status_code == 401
    assert "nope" not in r.text
