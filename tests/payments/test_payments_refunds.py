"""Refunds still open at the provider count against what can be refunded (real PostgreSQL,
the PSP simulator as Stripe and Adyen): two refunds never refund more than was captured; a
refund that fails gives its amount back."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from payments_env import Env
from test_payments_webhooks import authorize_card, post_signed, wait_state

import made_ids

pytestmark = pytest.mark.stack


def cid() -> str:
    return f"rf_{made_ids.ref(n=16)}"


async def captured(env: Env, client: httpx.AsyncClient, provider: str, amount: int) -> str:
    c = cid()
    if provider == "adyen":
        env.sim.faults(
            {"kind": "decline", "provider": "stripe", "declineClass": "soft", "count": 1}
        )
    r = await authorize_card(client, c, amount)
    assert r.json()["provider"] == f"{provider}-eu", r.text
    r = await client.post(f"/v1/payments/{c}/capture", json={})
    assert r.status_code == 200, r.text
    await wait_state(client, c, "captured")
    env.sim.admin("DELETE", "faults")
    return c


async def refund(client: httpx.AsyncClient, c: str, refund_id: str, amount: int) -> httpx.Response:
    return await client.post(
        f"/v1/payments/{c}/refunds", json={"refund_id": refund_id, "amount": amount}
    )


def charged(env: Env, c: str) -> dict[str, Any]:
    """The simulator's payment that was captured (a declined first try is another one)."""
    [p] = [p for p in env.sim.payments(c) if "captured" in p["history"]]
    return p


def refunds_sent(env: Env, c: str) -> list[str]:
    p = charged(env, c)
    return [h for h in p["history"] if h.startswith(("refunded:", "refund_failed:"))]


async def refund_until(client: httpx.AsyncClient, c: str, rid: str, amount: int) -> httpx.Response:
    """The refund, sent again (same id) until the webhook that frees the amount was applied."""
    deadline = time.monotonic() + 10
    while True:
        r = await refund(client, c, rid, amount)
        if r.status_code != 422 or time.monotonic() > deadline:
            return r
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("provider", ["adyen", "stripe"])
async def test_a_pending_refund_holds_its_amount(
    env: Env, client: httpx.AsyncClient, provider: str
) -> None:
    c = await captured(env, client, provider, 1000)
    rules: list[dict[str, Any]] = [
        {"kind": "webhook_delay", "provider": provider, "latencyMs": 800}
    ]
    if provider == "stripe":
        rules.append({"kind": "refund_pending", "provider": "stripe", "count": 1})
    env.sim.faults(*rules)
    first = await refund(client, c, "r1", 600)
    assert first.status_code == 200, first.text
    assert (first.json()["state"], first.json()["refunded_amount"]) == ("captured", 0)  # pending
    second = await refund(client, c, "r2", 600)
    assert second.status_code == 422, second.text
    problem = second.json()
    assert (problem["type"].rsplit("/", 1)[1], problem["field"]) == ("invalid-amount", "amount")
    assert "refundable 400" in problem["detail"]
    assert len(refunds_sent(env, c)) <= 1  # the second never reached the provider
    # what is left fits, and the same refund id again is the same refund
    assert (await refund(client, c, "r3", 400)).status_code == 200
    assert (await refund(client, c, "r1", 600)).status_code == 200
    body = await wait_state(client, c, "refunded")
    assert body["refunded_amount"] == 1000
    p = charged(env, c)
    assert (p["captured"], p["refunded"]) == (1000, 1000)
    assert sorted(refunds_sent(env, c)) == ["refunded:400", "refunded:600"]


@pytest.mark.parametrize("provider", ["adyen", "stripe"])
async def test_concurrent_refunds_never_refund_more_than_was_captured(
    env: Env, client: httpx.AsyncClient, provider: str
) -> None:
    c = await captured(env, client, provider, 1000)
    env.sim.faults(
        {"kind": "webhook_delay", "provider": provider, "latencyMs": 500},
        {"kind": "latency", "provider": provider, "operation": "refund", "latencyMs": 150},
        {"kind": "refund_pending", "provider": "stripe"},
    )
    answers = await asyncio.gather(*(refund(client, c, f"c{i}", 700) for i in range(4)))
    codes = sorted(r.status_code for r in answers)
    assert codes.count(200) == 1, [r.text for r in answers]
    assert set(codes) - {200, 409, 422} == set(), codes  # 409: another refund was running
    await wait_state(client, c, "partially_refunded")
    assert refunds_sent(env, c) == ["refunded:700"]
    late = await refund(client, c, "late", 700)
    assert late.status_code == 422, late.text  # only 300 left


@pytest.mark.parametrize("provider", ["adyen", "stripe"])
async def test_a_failed_refund_gives_its_amount_back(
    env: Env, client: httpx.AsyncClient, provider: str
) -> None:
    c = await captured(env, client, provider, 800)
    env.sim.faults(
        {"kind": "refund_failure", "provider": provider, "count": 1},
        {"kind": "webhook_delay", "provider": provider, "latencyMs": 300},
    )
    r = await refund(client, c, "doomed", 800)
    assert r.status_code == 200, r.text  # accepted for processing
    assert (await refund(client, c, "other", 1)).status_code == 422  # all 800 held
    # REFUND success=false / refund.updated failed: the 800 are refundable again
    again = await refund_until(client, c, "other", 800)
    assert again.status_code == 200, again.text
    body = await wait_state(client, c, "refunded")
    assert body["refunded_amount"] == 800
    failed = await refund(client, c, "doomed", 800)
    assert failed.status_code == 409, failed.text
    assert failed.json()["type"].endswith("refund-failed")
    p = charged(env, c)
    assert (p["captured"], p["refunded"]) == (800, 800)


async def test_a_stripe_refund_that_fails_after_it_succeeded_is_taken_back(
    env: Env, client: httpx.AsyncClient
) -> None:
    c = await captured(env, client, "stripe", 500)
    r = await refund(client, c, "r1", 500)
    assert (r.json()["state"], r.json()["refunded_amount"]) == ("refunded", 500), r.text
    conn = await asyncpg.connect(env.database_url)
    try:
        refund_id = await conn.fetchval(
            "SELECT psp_reference FROM psp_attempts WHERE checkout_id = $1"
            " AND operation = 'refund'",
            c,
        )
    finally:
        await conn.close()
    assert str(refund_id).startswith("re_")
    secret = env.creds.values["stripe-eu"]["webhook-secret"]
    pi = (await client.get(f"/v1/payments/{c}")).json()["psp_reference"]

    async def event(status: str) -> dict[str, Any]:
        obj = {
            "id": refund_id,
            "object": "refund",
            "amount": 500,
            "payment_intent": pi,
            "status": status,
            "metadata": {"checkout_id": c},
        }
        body = json.dumps(
            {"id": f"evt_{made_ids.ref(n=32)}", "type": "refund.updated", "data": {"object": obj}}
        ).encode()
        resp = await post_signed(client, "stripe-eu", secret, body, "Stripe-Signature")
        assert resp.status_code == 200, resp.text
        result: dict[str, Any] = resp.json()
        return result

    assert (await event("succeeded"))["outcome"] == "stale"  # counted once, by the answer
    assert (await event("failed")) == {"outcome": "applied", "state": "captured"}
    assert (await event("succeeded"))["outcome"] == "stale"  # failed is final
    assert (await client.get(f"/v1/payments/{c}")).json()["refunded_amount"] == 0


async def test_an_unanswered_refund_holds_its_amount_until_the_sweeper_resends_it(
    env: Env, client: httpx.AsyncClient
) -> None:
    c = await captured(env, client, "adyen", 900)
    env.sim.faults(
        # Adyen refunded, then answered 500: our side does not know
        {
            "kind": "error_5xx",
            "provider": "adyen",
            "operation": "refund",
            "afterCharge": True,
            "count": 1,
        },
        {"kind": "webhook_delay", "provider": "adyen", "latencyMs": 60_000},  # REFUND is late
    )
    r = await refund(client, c, "lost", 900)
    assert r.status_code == 503, r.text  # outcome unknown
    assert (await refund(client, c, "more", 1)).status_code == 422  # the 900 may be gone
    report = (
        await client.post(
            "/v1/payments/reconcile",
            params={"pending_after_seconds": 0, "abandon_after_seconds": 3600},
        )
    ).json()
    assert report["refunds_resent"] >= 1, report
    assert refunds_sent(env, c) == ["refunded:900"]  # the same key: Adyen's stored answer
    assert (await refund(client, c, "more", 1)).status_code == 422  # now pending: still held
    assert (await refund(client, c, "lost", 900)).status_code == 200  # accepted, same refund


@pytest.mark.parametrize("fails", [False, True], ids=["succeeds", "fails"])
async def test_a_pending_stripe_refund_whose_webhook_is_lost_is_read_back(
    env: Env, client: httpx.AsyncClient, fails: bool
) -> None:
    c = await captured(env, client, "stripe", 1000)
    env.sim.faults(
        {"kind": "refund_failure" if fails else "refund_pending", "provider": "stripe", "count": 1},
        {"kind": "webhook_delay", "provider": "stripe", "latencyMs": 600_000},  # never, here
    )
    r = await refund(client, c, "lost", 600)
    assert (r.status_code, r.json()["refunded_amount"]) == (200, 0), r.text
    verdict = "refund_failed:600" if fails else "refunded:600"
    deadline = time.monotonic() + 10
    while verdict not in refunds_sent(env, c):  # Stripe settled it; refund.updated is lost
        assert time.monotonic() < deadline, charged(env, c)
        await asyncio.sleep(0.05)
    held = await refund(client, c, "more", 1000)
    assert held.status_code == 422, held.text  # the 600 are still held
    await asyncio.sleep(0.6)
    report = await client.post("/v1/payments/reconcile", params={"pending_after_seconds": 0.5})
    assert report.json()["refunds_read_back"] >= 1, report.text
    body = (await client.get(f"/v1/payments/{c}")).json()
    if fails:
        assert (body["state"], body["refunded_amount"]) == ("captured", 0)
        assert (await refund(client, c, "all", 1000)).status_code == 200  # free again
    else:
        assert (body["state"], body["refunded_amount"]) == ("partially_refunded", 600)
        await client.post("/v1/payments/reconcile", params={"pending_after_seconds": 0.5})
        assert (await client.get(f"/v1/payments/{c}")).json()["refunded_amount"] == 600  # once
