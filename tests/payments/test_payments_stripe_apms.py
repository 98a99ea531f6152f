"""UPI, iDEAL and Pix through Stripe, as Stripe runs them (real PostgreSQL/Redis, the simulator
as Stripe; the requests themselves are checked against stripe-mock in
test_payments_stripe_wire.py): requires_action with the method's documented next_action, the
payer completes, ``payment_intent.succeeded`` (captured on confirmation), and the later capture
call ends captured without a second charge."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import payments_harness as harness
import pytest
from payments_env import Env, new_env
from test_payments_webhooks import wait_state

import made_ids
from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis

pytestmark = pytest.mark.stack

CASES = {
    # method: (country, currency, the next_action Stripe documents for it)
    "ideal": ("NL", "EUR", "redirect_to_url"),
    "pix": ("BR", "BRL", "pix_display_qr_code"),
    "upi": ("IN", "INR", "upi_handle_redirect_or_display_qr_code"),
}


@pytest.fixture(scope="module")
def apm_env(
    sim: harness.Sim, postgres: Postgres, redis: Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    e = new_env(
        sim, postgres, redis, tmp_path_factory.mktemp("apms"), name="apms", apms_at="stripe-eu"
    )
    try:
        yield e
    finally:
        e.payments.stop()


@pytest.fixture
async def client(apm_env: Env) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=apm_env.url, timeout=30) as c:
        yield c


def authorize_body(method: str, token: dict[str, str] | None) -> dict[str, object]:
    country, currency, _ = CASES[method]
    body: dict[str, object] = {
        "checkout_id": f"apm_{made_ids.ref(n=16)}",
        "amount": 4200,
        "currency": currency,
        "country": country,
        "payment_method": method,
    }
    if token is not None:
        body["payment_method_token"] = token
    return body


@pytest.mark.parametrize("method", sorted(CASES))
async def test_an_apm_at_stripe_waits_for_the_payer_then_captures_once(
    apm_env: Env, client: httpx.AsyncClient, method: str
) -> None:
    body = authorize_body(method, {"return_url": harness.RETURN_URL})
    c = str(body["checkout_id"])
    r = await client.post("/v1/payments/authorize", json=body)
    assert r.status_code == 200, r.text
    payment = r.json()
    assert (payment["state"], payment["provider"]) == ("requires_action", "stripe-eu"), payment
    action = payment["action"]
    assert action["type"] == CASES[method][2], action
    assert action[action["type"]], action  # the QR code / the bank's URL for the payer
    if method == "ideal":
        assert action["redirect_to_url"]["return_url"] == harness.RETURN_URL
    # the payer completes; payment_intent.succeeded: captured at Stripe on confirmation
    await wait_state(client, c, "authorized")
    captured = await client.post(f"/v1/payments/{c}/capture", json={})
    assert captured.status_code == 200, captured.text
    assert (captured.json()["state"], captured.json()["captured_amount"]) == ("captured", 4200)
    [charge] = apm_env.sim.payments(c)
    assert (charge["status"], charge["captured"], charge["method"]) == ("captured", 4200, method)
    assert charge["history"].count("captured") == 1


async def test_ideal_without_a_return_url_is_never_sent(
    apm_env: Env, client: httpx.AsyncClient
) -> None:
    """Stripe refuses to confirm a redirect method without a return_url: not sent at all."""
    body = authorize_body("ideal", None)
    r = await client.post("/v1/payments/authorize", json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["field"] == "payment_method_token"
    assert apm_env.sim.payments(str(body["checkout_id"])) == []


async def test_the_simulator_refuses_what_stripe_refuses(apm_env: Env) -> None:
    """The simulator's Stripe: an iDEAL intent in another currency than EUR, or without a
    return_url, is a 400 naming the parameter (and creates nothing)."""
    endpoint = harness.provider("stripe-eu", apm_env.sim, apm_env.creds)["endpoint"]
    key = apm_env.creds.values["stripe-eu"]["api-key"]
    async with httpx.AsyncClient(timeout=10) as http:
        for form, param in (
            ({"currency": "usd", "return_url": harness.RETURN_URL}, "payment_method_types"),
            ({"currency": "eur"}, "return_url"),
        ):
            resp = await http.post(
                f"{endpoint}/v1/payment_intents",
                headers={"Authorization": f"Bearer {key}"},
                data={
                    "amount": "100",
                    "confirm": "true",
                    "payment_method_data[type]": "ideal",
                    "payment_method_types[0]": "ideal",
                    "metadata[checkout_id]": "apm-refused",
                    **form,
                },
            )
            assert resp.status_code == 400, resp.text
            assert resp.json()["error"]["param"] == param
    assert apm_env.sim.payments("apm-refused") == []
