"""A capture Adyen accepts (``received``) and decides later by webhook, end to end: real
processes, PostgreSQL, Redis, Kafka, Temporal; the PSP simulator's Adyen holds its CAPTURE /
CAPTURE_FAILED notification back (``webhook_delay``).

* CAPTURE within the saga's bound: payments signals the saga, which completes the order (no
  compensation, whatever the delay, as long as it is under the bound);
* CAPTURE after the saga gave up (the order compensated, the stock released, the void
  recorded as a release at payments): the late capture is refunded, once: one capture and one
  refund at the provider, the payment ``refunded``, a redelivered notification and sweeper
  passes change nothing;
* CAPTURE_FAILED after the saga gave up: the authorization is voided at the provider.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import checkout_env as ce
import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from test_services_orders import body, new_sku, stock, wait_order

from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis
from checkout_stack.components.temporal import Temporal
from checkout_stack.pytest_plugin import KafkaClusters

pytestmark = pytest.mark.stack
CAPTURE_TIMEOUT_S = 6
"""The saga's bound on a capture's outcome here (an hour by default)."""


@pytest.fixture(scope="module")
def env(
    postgres: Postgres,
    redis: Redis,
    temporal: Temporal,
    kafka_clusters: KafkaClusters,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ce.CheckoutEnv]:
    yield from ce.running(
        postgres,
        redis,
        temporal,
        kafka_clusters,
        tmp_path_factory,
        "capture-outcome",
        webhooks=True,
        card_eu_providers=("adyen-eu",),  # captures answer "received"; CAPTURE decides
        orders_extra={
            "ORDERS_CAPTURE_OUTCOME_TIMEOUT_SECONDS": str(CAPTURE_TIMEOUT_S),
            "ORDERS_CAPTURE_OUTCOME_POLL_SECONDS": "60",  # the signal decides, not a read
        },
    )


@pytest.fixture(autouse=True)
def _no_faults(env: ce.CheckoutEnv) -> Iterator[None]:
    yield
    env.sim.admin("DELETE", "faults")


def hold_notifications(env: ce.CheckoutEnv, ms: int) -> None:
    env.sim.faults(
        {"kind": "webhook_delay", "provider": "adyen", "operation": "webhook", "latencyMs": ms}
    )


async def payment(env: ce.CheckoutEnv, cid: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as c:
        got: dict[str, Any] = (await c.get(f"{env.payments.url}/v1/payments/{cid}")).json()
        return got


async def wait_payment(env: ce.CheckoutEnv, cid: str, state: str, wait_s: float) -> dict:
    deadline = time.monotonic() + wait_s
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = await payment(env, cid)
        if last.get("state") == state:
            return last
        await asyncio.sleep(0.3)
    raise AssertionError(f"payment {cid} never reached {state}: {last}")


async def reconcile(env: ce.CheckoutEnv) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(
            f"{env.payments.url}/v1/payments/reconcile",
            json={"abandon_after_seconds": 3600, "pending_after_seconds": 0},
        )
        assert r.status_code == 200, r.text
        report: dict[str, Any] = r.json()
        return report


def at_provider(env: ce.CheckoutEnv, cid: str) -> list[str]:
    """The history of the checkout's payment at the simulated Adyen."""
    found = env.sim.payments(cid)
    assert len(found) == 1, found
    return list(found[0]["history"])


async def kinds_of(temporal: Temporal, cid: str) -> list[str]:
    tc = await Client.connect(temporal.address, namespace=temporal.namespace)
    hist = await tc.get_workflow_handle(f"checkout-{cid}").fetch_history()
    return [EventType.Name(e.event_type) for e in hist.events]


async def test_a_capture_decided_within_the_bound_completes_by_signal(
    env: ce.CheckoutEnv, temporal: Temporal
) -> None:
    sku = new_sku(env, 4)
    cid = f"co-{uuid.uuid4().hex[:10]}"
    hold_notifications(env, 2500)  # Adyen's CAPTURE comes 2.5 s after its "received"
    async with httpx.AsyncClient(base_url=env.orders.url, timeout=60) as client:
        resp = await client.post("/v1/checkouts", json=body(cid, sku, 1))
        assert resp.status_code == 201, resp.text
        await wait_order(client, cid, "fulfilment_requested", wait_s=CAPTURE_TIMEOUT_S + 10)
    assert (await payment(env, cid))["state"] == "captured"
    assert await stock(env, sku) == 3
    kinds = await kinds_of(temporal, cid)
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED" in kinds, kinds
    assert "EVENT_TYPE_TIMER_STARTED" in kinds, kinds  # the bound, a durable timer
    # the signal decided: markers for place, capture, the patch and complete only (no
    # fallback read of the payment), and no compensation activity
    assert kinds.count("EVENT_TYPE_MARKER_RECORDED") == 4, kinds
    assert "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED" not in kinds, kinds
    assert env.sim.ledger()["checkouts"][cid]["captures"] == 1


async def test_a_capture_after_the_saga_gave_up_is_refunded_once(env: ce.CheckoutEnv) -> None:
    sku = new_sku(env, 4)
    cid = f"co-{uuid.uuid4().hex[:10]}"
    hold_notifications(env, (CAPTURE_TIMEOUT_S + 4) * 1000)
    async with httpx.AsyncClient(base_url=env.orders.url, timeout=60) as client:
        resp = await client.post("/v1/checkouts", json=body(cid, sku, 1))
        assert resp.status_code == 201, resp.text
        # no word from Adyen within the bound: the order is given up, the stock released
        await wait_order(client, cid, "capture_failed", wait_s=CAPTURE_TIMEOUT_S + 10)
    assert await stock(env, sku) == 4
    assert (await payment(env, cid))["state"] == "capture_pending"  # the release is recorded
    # CAPTURE arrives: payments refunds it (Adyen: received, then REFUND, also held back)
    done = await wait_payment(env, cid, "refunded", wait_s=3 * CAPTURE_TIMEOUT_S + 20)
    assert done["refunded_amount"] == done["captured_amount"] == done["amount"]
    history = at_provider(env, cid)
    assert history.count("captured") == 1, history
    assert [h for h in history if h.startswith("refunded")] == [f"refunded:{done['amount']}"]
    # a later sweep (and the provider's redeliveries) refund nothing more
    assert (await reconcile(env))["released_late"] == 0
    assert (await payment(env, cid))["state"] == "refunded"
    assert len([h for h in at_provider(env, cid) if h.startswith("refunded")]) == 1


async def test_a_capture_failure_after_the_saga_gave_up_is_voided(env: ce.CheckoutEnv) -> None:
    sku = new_sku(env, 4)
    cid = f"co-{uuid.uuid4().hex[:10]}"
    env.sim.faults(
        {
            "kind": "webhook_delay",
            "provider": "adyen",
            "operation": "webhook",
            "latencyMs": (CAPTURE_TIMEOUT_S + 4) * 1000,
        },
        {"kind": "capture_failure", "provider": "adyen", "operation": "capture"},
    )
    async with httpx.AsyncClient(base_url=env.orders.url, timeout=60) as client:
        resp = await client.post("/v1/checkouts", json=body(cid, sku, 1))
        assert resp.status_code == 201, resp.text
        await wait_order(client, cid, "capture_failed", wait_s=CAPTURE_TIMEOUT_S + 10)
    assert await stock(env, sku) == 4
    await wait_payment(env, cid, "voided", wait_s=3 * CAPTURE_TIMEOUT_S + 20)
    row = env.sim.ledger()["checkouts"][cid]
    assert (row["captures"], row["voids"], row["charged"]) == (0, 1, 0), row
