"""The same checkout resumed in another region (its own payments instance and database, the
same PSPs) reaches the PSP's own dedup: one authorization, one capture."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import payments_harness as harness
import pytest
from payments_env import Env, new_env

from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def regions(
    sim: harness.Sim, postgres: Postgres, redis: Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Env, Env]]:
    root = tmp_path_factory.mktemp("regions")
    a = new_env(sim, postgres, redis, root / "a", name="region_a", redis_db=4)
    # region B: same credentials (same merchant accounts), own database, own Redis
    b_routing = harness.routing_config(sim, a.creds, region="us")
    dsn = postgres.create_database(f"pay_region_b_{uuid.uuid4().hex[:8]}")
    b_proc = harness.payments_proc(
        root / "a",
        name="region_b",
        database_url=dsn,
        redis_url=redis.url.rsplit("/", 1)[0] + "/5",
        routing=b_routing,
    ).start()
    b = Env(sim, a.creds, b_proc, dsn, root / "a")
    try:
        yield a, b
    finally:
        a.payments.stop()
        b.payments.stop()


def body(c: str, country: str = "DE", currency: str = "EUR") -> dict[str, object]:
    return {
        "checkout_id": c,
        "amount": 2500,
        "currency": currency,
        "country": country,
        "payment_method_token": harness.TOKEN,
    }


async def test_resume_in_another_region_reaches_the_psp_dedup(regions: tuple[Env, Env]) -> None:
    a, b = regions
    c = f"rg_{uuid.uuid4().hex[:12]}"
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as ca,
        httpx.AsyncClient(base_url=b.url, timeout=30) as cb,
    ):
        ra = await ca.post("/v1/payments/authorize", json=body(c))
        rb = await cb.post("/v1/payments/authorize", json=body(c))
        assert ra.status_code == rb.status_code == 200
        assert ra.json()["psp_reference"] == rb.json()["psp_reference"]
        assert (await cb.post(f"/v1/payments/{c}/capture", json={})).json()["state"] == "captured"
        # region A still thinks "authorized"; its capture replays B's at the PSP
        assert (await ca.post(f"/v1/payments/{c}/capture", json={})).json()["state"] == "captured"
        # and A's sweeper must not void what B captured
        rep = (await ca.post("/v1/payments/reconcile", params={"abandon_after_seconds": 0})).json()
        assert rep["errors"] == 0
    row = a.sim.ledger()["checkouts"][c]
    assert (row["authorizations"], row["captures"], row["voids"]) == (1, 1, 0)


async def test_failover_history_replays_in_the_other_region(regions: tuple[Env, Env]) -> None:
    a, b = regions
    c = f"rg_{uuid.uuid4().hex[:12]}"
    a.sim.faults({"kind": "decline", "provider": "stripe", "declineClass": "soft", "count": 1})
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as ca,
        httpx.AsyncClient(base_url=b.url, timeout=30) as cb,
    ):
        ra = await ca.post("/v1/payments/authorize", json=body(c))
        assert ra.json()["provider"] == "adyen-eu"
        rb = await cb.post("/v1/payments/authorize", json=body(c))  # Stripe replays its decline
        assert rb.json()["provider"] == "adyen-eu"
        assert rb.json()["psp_reference"] == ra.json()["psp_reference"]
        # B voids (the customer abandoned): Adyen answers "received"; its CANCELLATION
        # webhook (sent to region A's endpoint) corrects A's stale view, nothing is re-voided
        voided = (await cb.post(f"/v1/payments/{c}/void", json={})).json()
        assert voided["state"] in ("void_pending", "voided")
        for _ in range(50):
            if (await ca.get(f"/v1/payments/{c}")).json()["state"] == "voided":
                break
            await asyncio.sleep(0.1)
        r = await ca.post(f"/v1/payments/{c}/capture", json={})
        assert r.status_code == 409
        assert r.json()["state"] == "voided"
    row = a.sim.ledger()["checkouts"][c]
    assert (row["authorizations"], row["captures"], row["voids"], row["charged"]) == (1, 0, 1, 0)


async def test_sweeper_syncs_instead_of_voiding_what_another_region_captured(
    regions: tuple[Env, Env],
) -> None:
    a, b = regions
    c = f"rg_{uuid.uuid4().hex[:12]}"
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as ca,
        httpx.AsyncClient(base_url=b.url, timeout=30) as cb,
    ):
        assert (await ca.post("/v1/payments/authorize", json=body(c))).status_code == 200
        assert (await cb.post("/v1/payments/authorize", json=body(c))).status_code == 200
        assert (await cb.post(f"/v1/payments/{c}/capture", json={})).json()["state"] == "captured"
        rep = (await ca.post("/v1/payments/reconcile", params={"abandon_after_seconds": 0})).json()
        assert rep["synced"] >= 1
        assert (await ca.get(f"/v1/payments/{c}")).json()["state"] == "captured"
    row = a.sim.ledger()["checkouts"][c]
    assert (row["authorizations"], row["captures"], row["voids"]) == (1, 1, 0)


async def test_region_without_the_webhook_asks_the_provider(regions: tuple[Env, Env]) -> None:
    _, b = regions  # the providers send webhooks to region A only
    c = f"rg_{uuid.uuid4().hex[:12]}"
    upi = {
        "checkout_id": c,
        "amount": 800,
        "currency": "INR",
        "country": "IN",
        "payment_method": "upi",
    }
    async with httpx.AsyncClient(base_url=b.url, timeout=30) as cb:
        assert (await cb.post("/v1/payments/authorize", json=upi)).json()[
            "state"
        ] == "requires_action"
        await asyncio.sleep(0.2)  # the customer approves; the webhook goes elsewhere
        assert (await cb.get(f"/v1/payments/{c}")).json()["state"] == "requires_action"
        params = {"abandon_after_seconds": 3600, "pending_after_seconds": 0}
        rep = (await cb.post("/v1/payments/reconcile", params=params)).json()
        assert rep["synced"] >= 1
        assert (await cb.get(f"/v1/payments/{c}")).json()["state"] == "authorized"


async def test_weighted_routes_pick_the_same_provider_in_both_regions(
    regions: tuple[Env, Env],
) -> None:
    a, b = regions
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as ca,
        httpx.AsyncClient(base_url=b.url, timeout=30) as cb,
    ):
        providers = set()
        for _ in range(20):
            c = f"rg_{uuid.uuid4().hex[:12]}"
            ra = await ca.post("/v1/payments/authorize", json=body(c, "US", "USD"))
            rb = await cb.post("/v1/payments/authorize", json=body(c, "US", "USD"))
            assert ra.json()["psp_reference"] == rb.json()["psp_reference"]
            providers.add(ra.json()["provider"])
            assert a.sim.ledger()["checkouts"][c]["authorizations"] == 1
    assert providers == {"adyen-us", "stripe-us"}  # the weighted split is real
