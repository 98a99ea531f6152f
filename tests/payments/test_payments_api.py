"""The payments API end to end: real service process, real PostgreSQL and Redis, the simulator."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import payments_harness as harness
import pytest
from payments_env import Env

import made_ids

pytestmark = pytest.mark.stack


def cid() -> str:
    return f"co_{made_ids.ref(n=16)}"


def auth_body(checkout_id: str, **over: Any) -> dict[str, Any]:
    body = {
        "checkout_id": checkout_id,
        "amount": 4999,
        "currency": "EUR",
        "country": "DE",
        "payment_method": "card",
    }
    body.update(over)
    if "payment_method_token" not in over:
        body["payment_method_token"] = harness.token_for(str(body["payment_method"]))
    return body


async def authorize(
    client: httpx.AsyncClient, checkout_id: str, key: str | None = None, **over: Any
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return await client.post(
        "/v1/payments/authorize", json=auth_body(checkout_id, **over), headers=headers
    )


async def test_authorize_capture_refund_happy_path(env: Env, client: httpx.AsyncClient) -> None:
    c = cid()
    r = await authorize(client, c, key=f"k-{c}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "authorized"
    assert body["provider"] == "stripe-eu"
    assert "psp;dur=" in r.headers["server-timing"]
    r = await client.post(f"/v1/payments/{c}/capture", json={})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "captured"
    assert r.json()["captured_amount"] == 4999
    r = await client.post(f"/v1/payments/{c}/refunds", json={"refund_id": "r1", "amount": 999})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "partially_refunded"
    r = await client.post(f"/v1/payments/{c}/refunds", json={"refund_id": "r2", "amount": 4000})
    assert r.json()["state"] == "refunded"
    [p] = env.sim.payments(c)
    assert (p["status"], p["captured"], p["refunded"]) == ("refunded", 4999, 4999)


def ledger_row(env: Env, checkout_id: str) -> dict[str, int]:
    row: dict[str, int] = env.sim.ledger()["checkouts"].get(checkout_id, {})
    return row


def providers_charged(env: Env, checkout_id: str) -> list[str]:
    return sorted(
        f"{p['provider']}/{p['endpoint']}"
        for p in env.sim.payments(checkout_id)
        if "authorized" in p["history"]
    )


# -- bad input: problem+json naming the field ---------------------------------------------


def assert_problem(r: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    if field is not None:
        assert body["field"] == field, body
        assert field in body["detail"]
    return body


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.pop("checkout_id"), "checkout_id"),
        (lambda b: b.pop("amount"), "amount"),
        (lambda b: b.update(currency="eur"), "currency"),
        (lambda b: b.update(currency="EURO"), "currency"),
        (lambda b: b.update(amount=-5), "amount"),
        (lambda b: b.update(amount=0), "amount"),
        (lambda b: b.update(amount=12.5), "amount"),
        (lambda b: b.update(country="Germany"), "country"),
        (lambda b: b.update(payment_method="cheque"), "payment_method"),
        (lambda b: b.update(surprise=1), "surprise"),
    ],
)
async def test_bad_input_is_a_problem_naming_the_field(
    client: httpx.AsyncClient, mutate: Any, field: str
) -> None:
    body = auth_body(cid())
    mutate(body)
    r = await client.post("/v1/payments/authorize", json=body)
    assert_problem(r, 422, field)


async def test_unparseable_json_and_no_route_are_problems(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/payments/authorize", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_problem(r, 422)
    r = await authorize(client, cid(), country="JP", currency="JPY")
    assert_problem(r, 422, "country")
    r = await client.post(f"/v1/payments/{cid()}/capture", json={})
    assert_problem(r, 404)
    r = await client.get("/v1/nothing-here")
    assert_problem(r, 404)


# -- our Idempotency-Key layer -------------------------------------------------------------


async def test_same_key_same_body_replays_the_stored_response(
    env: Env, client: httpx.AsyncClient
) -> None:
    c = cid()
    first = await authorize(client, c, key=f"idem-{c}")
    again = await authorize(client, c, key=f"idem-{c}")
    assert first.status_code == again.status_code == 200
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
    assert ledger_row(env, c)["authorizations"] == 1


async def test_same_key_different_body_is_422(client: httpx.AsyncClient) -> None:
    c = cid()
    assert (await authorize(client, c, key=f"idem-{c}")).status_code == 200
    r = await authorize(client, c, key=f"idem-{c}", amount=5000)
    body = assert_problem(r, 422, "Idempotency-Key")
    assert body["type"].endswith("idempotency-key-reused")
    # and a different path with the same key too
    r = await client.post(
        f"/v1/payments/{c}/capture", json={}, headers={"Idempotency-Key": f"idem-{c}"}
    )
    assert_problem(r, 422, "Idempotency-Key")


async def test_same_key_while_in_flight_is_409(env: Env, client: httpx.AsyncClient) -> None:
    import asyncio

    c = cid()
    # The provider holds the request that gets there first for 700 ms (under the 1 s provider
    # timeout); the other one, sent 50 ms later, finds the key in flight. Which of the two is
    # "first" is left to the machine: on a loaded one a fixed order made this test flaky.
    env.sim.faults(
        {"kind": "latency", "provider": "stripe", "operation": "authorize", "latencyMs": 700}
    )
    first = asyncio.create_task(authorize(client, c, key=f"idem-{c}"))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(authorize(client, c, key=f"idem-{c}"))
    answers = sorted(await asyncio.gather(first, second), key=lambda r: r.status_code)
    assert [r.status_code for r in answers] == [200, 409]
    body = assert_problem(answers[1], 409, "Idempotency-Key")
    assert body["type"].endswith("idempotency-key-in-flight")
    assert answers[1].headers["retry-after"]
    assert ledger_row(env, c)["authorizations"] == 1


async def test_concurrent_duplicates_without_keys_charge_once(
    env: Env, client: httpx.AsyncClient
) -> None:
    import asyncio

    c = cid()
    env.sim.faults(
        {"kind": "latency", "provider": "stripe", "operation": "authorize", "latencyMs": 200}
    )
    results = await asyncio.gather(*(authorize(client, c) for _ in range(8)))
    codes = sorted(r.status_code for r in results)
    assert set(codes) <= {200, 409}, codes
    assert 200 in codes
    for r in results:
        if r.status_code == 409:
            assert r.json()["type"].endswith("operation-in-progress")
    final = (await client.get(f"/v1/payments/{c}")).json()
    assert final["state"] == "authorized"
    assert ledger_row(env, c)["authorizations"] == 1


# -- routing, declines, ambiguous timeouts ---------------------------------------------------


async def test_soft_decline_fails_over_to_the_next_provider(
    env: Env, client: httpx.AsyncClient
) -> None:
    c = cid()
    env.sim.faults({"kind": "decline", "provider": "stripe", "declineClass": "soft", "count": 1})
    r = await authorize(client, c)
    assert r.status_code == 200, r.text
    assert r.json()["provider"] == "adyen-eu"
    assert providers_charged(env, c) == ["adyen/eu"]
    # capture goes back to the same account and regional endpoint
    assert (await client.post(f"/v1/payments/{c}/capture", json={})).status_code == 200
    [adyen] = [p for p in env.sim.payments(c) if p["provider"] == "adyen"]
    assert (adyen["endpoint"], adyen["status"], adyen["captured"]) == ("eu", "captured", 4999)


@pytest.mark.parametrize(("decline", "cls"), [("hard", "hard_decline"), ("fraud", "fraud")])
async def test_hard_decline_and_fraud_stop(
    env: Env, client: httpx.AsyncClient, decline: str, cls: str
) -> None:
    c = cid()
    env.sim.faults({"kind": "decline", "provider": "stripe", "declineClass": decline, "count": 1})
    r = await authorize(client, c)
    body = assert_problem(r, 402)
    assert body["decline_class"] == cls
    assert [p["provider"] for p in env.sim.payments(c)] == ["stripe"]  # adyen never asked
    assert (await client.get(f"/v1/payments/{c}")).json()["state"] == "declined"


async def test_all_soft_declines_end_declined(env: Env, client: httpx.AsyncClient) -> None:
    c = cid()
    env.sim.faults({"kind": "decline", "declineClass": "soft", "operation": "authorize"})
    body = assert_problem(await authorize(client, c), 402)
    assert body["decline_class"] == "soft_decline"
    assert sorted(p["provider"] for p in env.sim.payments(c)) == ["adyen", "stripe"]
    assert ledger_row(env, c)["authorizations"] == 0


async def test_timeout_after_charge_is_replayed_not_failed_over(
    env: Env, client: httpx.AsyncClient
) -> None:
    c = cid()
    # the simulator records the charge, then answers after the client's 1 s timeout
    env.sim.faults(
        {
            "kind": "timeout_after_charge",
            "provider": "stripe",
            "operation": "authorize",
            "latencyMs": 1600,
            "count": 1,
        }
    )
    r = await authorize(client, c)
    assert r.status_code == 200, r.text
    assert r.json()["provider"] == "stripe-eu"
    assert providers_charged(env, c) == ["stripe/eu"]  # adyen never charged
    metrics = (await client.get("/metrics")).text
    assert 'payments_ambiguous_lookups_total{finding="found",provider="stripe-eu"}' in metrics


async def test_5xx_before_the_charge_is_replayed_with_the_same_key(
    env: Env, client: httpx.AsyncClient
) -> None:
    """A 5xx from a request that never ran is not saved under the key: the replay (same key)
    runs it, at the same provider; no other provider is asked."""
    c = cid()
    env.sim.faults(
        {"kind": "error_5xx", "provider": "stripe", "operation": "authorize", "count": 1}
    )
    r = await authorize(client, c)
    assert r.status_code == 200, r.text
    assert r.json()["provider"] == "stripe-eu"
    assert providers_charged(env, c) == ["stripe/eu"]
    assert [p["provider"] for p in env.sim.payments(c)] == ["stripe"]


async def test_5xx_after_the_charge_is_settled_by_the_providers_webhook(
    env: Env, client: httpx.AsyncClient
) -> None:
    """Stripe saved the 5xx under the key, so the replay answers it again (not "not charged");
    the payment_intent webhook names the authorization, and that settles it."""
    c = cid()
    env.sim.faults(
        {
            "kind": "error_5xx",
            "provider": "stripe",
            "operation": "authorize",
            "afterCharge": True,
            "count": 1,
        }
    )
    r = await authorize(client, c)
    # 200 if the webhook beat our replay, else 503 outcome-unknown; never another provider
    assert r.status_code in (200, 503), r.text
    assert [p["provider"] for p in env.sim.payments(c)] == ["stripe"]
    await wait_state(client, c, "authorized")
    r = await authorize(client, c)
    assert r.status_code == 200, r.text
    assert r.json()["provider"] == "stripe-eu"
    assert providers_charged(env, c) == ["stripe/eu"]


async def wait_state(client: httpx.AsyncClient, c: str, state: str, tries: int = 60) -> None:
    for _ in range(tries):
        if (await client.get(f"/v1/payments/{c}")).json()["state"] == state:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"payment {c} never reached {state}")


async def test_unknown_outcome_never_tries_another_provider(
    env: Env, client: httpx.AsyncClient
) -> None:
    c = cid()
    env.sim.faults(
        {
            "kind": "error_5xx",
            "provider": "stripe",
            "operation": "authorize",
            "afterCharge": True,
            "count": 1,
        },
        {"kind": "webhook_delay", "provider": "stripe", "latencyMs": 1500},
    )
    r = await authorize(client, c, key=f"k-{c}")
    body = assert_problem(r, 503)  # the replay answers the saved 5xx: still unknown
    assert body["type"].endswith("outcome-unknown")
    assert "retry-after" in r.headers
    assert [p["provider"] for p in env.sim.payments(c)] == ["stripe"]
    r = await authorize(client, c, key=f"k-{c}")  # 503 was not stored: the retry runs
    assert r.status_code == 503, r.text  # a saved 5xx stays a 5xx: never "not charged"
    assert [p["provider"] for p in env.sim.payments(c)] == ["stripe"]
    await wait_state(client, c, "authorized")  # the webhook (delayed 1.5 s) settles it
    r = await authorize(client, c, key=f"k-{c}")
    assert r.status_code == 200, r.text
    assert r.json()["provider"] == "stripe-eu"
    assert providers_charged(env, c) == ["stripe/eu"]


# -- state machine over HTTP -----------------------------------------------------------------


async def test_illegal_operations_are_409_and_repeats_are_idempotent(
    env: Env, client: httpx.AsyncClient
) -> None:
    c = cid()
    assert (await authorize(client, c)).status_code == 200
    assert (await client.post(f"/v1/payments/{c}/void", json={})).json()["state"] == "voided"
    assert (await client.post(f"/v1/payments/{c}/void", json={})).json()["state"] == "voided"
    body = assert_problem(await client.post(f"/v1/payments/{c}/capture", json={}), 409)
    assert body["type"].endswith("illegal-transition")
    assert body["state"] == "voided"
    c2 = cid()
    assert (await authorize(client, c2)).status_code == 200
    assert (await client.post(f"/v1/payments/{c2}/capture", json={})).json()["state"] == "captured"
    assert (await client.post(f"/v1/payments/{c2}/capture", json={})).json()["state"] == "captured"
    assert_problem(await client.post(f"/v1/payments/{c2}/void", json={}), 409)
    assert_problem(
        await client.post(f"/v1/payments/{c2}/refunds", json={"refund_id": "x", "amount": 999999}),
        422,
        "amount",
    )
    row = ledger_row(env, c2)
    assert (row["captures"], row["voids"]) == (1, 0)


async def test_capture_timeout_is_resolved_without_a_second_capture(
    env: Env, client: httpx.AsyncClient
) -> None:
    c = cid()
    assert (await authorize(client, c)).status_code == 200
    env.sim.faults(
        {"kind": "timeout_after_charge", "operation": "capture", "latencyMs": 1600, "count": 1}
    )
    r = await client.post(f"/v1/payments/{c}/capture", json={})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "captured"
    assert ledger_row(env, c)["captures"] == 1


# -- sweeper ---------------------------------------------------------------------------------


async def test_reconcile_voids_abandoned_authorizations(
    env: Env, client: httpx.AsyncClient
) -> None:
    c = cid()
    assert (await authorize(client, c)).status_code == 200
    r = await client.post(
        "/v1/payments/reconcile", params={"abandon_after_seconds": 0, "pending_after_seconds": 3600}
    )
    assert r.status_code == 200, r.text
    assert r.json()["voided_abandoned"] >= 1
    assert (await client.get(f"/v1/payments/{c}")).json()["state"] == "voided"
    row = ledger_row(env, c)
    assert (row["authorizations"], row["voids"], row["charged"]) == (1, 1, 0)


# -- health, metrics, OpenAPI ----------------------------------------------------------------


async def test_health_metrics_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = (await client.get("/health/ready")).json()
    assert ready["checks"] == {"postgres": "ok", "redis": "ok"}
    metrics = (await client.get("/metrics")).text
    for name in (
        "payments_authorizations_total",
        "payments_psp_request_seconds",
        "payments_circuit_breaker_state",
    ):
        assert name in metrics
    spec = (await client.get("/openapi.json")).json()
    paths = set(spec["paths"])
    assert {
        "/v1/payments/authorize",
        "/v1/payments/{checkout_id}/capture",
        "/v1/payments/{checkout_id}/void",
        "/v1/payments/{checkout_id}/refunds",
        "/v1/payments/{checkout_id}",
        "/v1/payments/reconcile",
        "/v1/webhooks/{provider}",
        "/health/live",
        "/health/ready",
        "/metrics",
    } <= paths


@pytest.mark.parametrize("provider", ["stripe", "adyen"])
async def test_connection_dropped_after_the_charge_is_looked_up(
    env: Env, client: httpx.AsyncClient, provider: str
) -> None:
    c = cid()
    if provider == "adyen":  # make Stripe decline softly so the payment reaches Adyen
        env.sim.faults(
            {"kind": "decline", "provider": "stripe", "declineClass": "soft", "count": 1},
            {
                "kind": "drop_after_charge",
                "provider": "adyen",
                "operation": "authorize",
                "count": 1,
            },
        )
    else:
        env.sim.faults(
            {
                "kind": "drop_after_charge",
                "provider": "stripe",
                "operation": "authorize",
                "count": 1,
            }
        )
    r = await authorize(client, c)
    assert r.status_code == 200, r.text
    assert r.json()["provider"] == f"{provider}-eu"
    assert providers_charged(env, c) == [f"{provider}/eu"]
    metrics = (await client.get("/metrics")).text
    # the cut connection was seen as such (an ambiguous network error), then looked up
    assert (
        f'payments_psp_errors_total{{failure_class="network_error",provider="{provider}-eu"}}'
        in (metrics)
    )
    env.sim.faults({"kind": "drop_after_charge", "operation": "capture", "count": 1})
    r = await client.post(f"/v1/payments/{c}/capture", json={})
    assert r.status_code == 200, r.text
    assert ledger_row(env, c)["captures"] == 1


async def test_a_slow_charge_still_in_progress_is_not_failed_over(
    env: Env, client: httpx.AsyncClient
) -> None:
    """The provider is still processing when we time out, so a lookup finds nothing yet; the
    same request sent again meets the provider's dedup (409 in progress), and nothing else is
    tried until the provider has answered."""
    import asyncio

    c = cid()
    # processing takes 2.5 s at Stripe (the key is held meanwhile); our timeout is 1 s
    env.sim.faults(
        {
            "kind": "latency",
            "provider": "stripe",
            "operation": "authorize",
            "latencyMs": 2500,
            "count": 1,
        }
    )
    r = await authorize(client, c, key=f"k-{c}")
    body = assert_problem(r, 503)
    assert body["type"].endswith("outcome-unknown")
    assert [p["provider"] for p in env.sim.payments(c)] == []  # adyen never asked
    await asyncio.sleep(2.0)  # Stripe finishes (and charges)
    r = await authorize(client, c, key=f"k-{c}")
    assert r.status_code == 200, r.text
    assert r.json()["provider"] == "stripe-eu"
    assert providers_charged(env, c) == ["stripe/eu"]


async def test_a_card_without_a_usable_token_is_a_422_and_reaches_no_provider(
    env: Env, client: httpx.AsyncClient
) -> None:
    c = cid()
    r = await authorize(client, c, payment_method_token=None)
    body = assert_problem(r, 422)
    assert (body["type"].rsplit("/", 1)[-1], body["field"]) == (
        "payment-method-required",
        "payment_method_token",
    )
    r = await authorize(client, c, payment_method_token={"return_url": harness.RETURN_URL})
    assert_problem(r, 422)
    assert env.sim.payments(c) == []
    r = await authorize(client, c)  # with the shopper's token it goes through
    assert r.status_code == 200, r.text
