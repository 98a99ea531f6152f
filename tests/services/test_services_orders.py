"""The checkout saga end to end: real processes, PostgreSQL, Redis, Kafka, Temporal; only the
PSPs are simulated."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import checkout_env as ce
import httpx
import payments_harness as ph
import pytest
import services_harness as h
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Replayer
from test_services_inventory import consume_all

from checkout_services.orders.workflow import CheckoutSagaWorkflow, CheckoutWorkflow
from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis
from checkout_stack.components.temporal import Temporal
from checkout_stack.pytest_plugin import KafkaClusters

pytestmark = pytest.mark.stack
ACTION_TIMEOUT_S = 15


@pytest.fixture(scope="module")
def env(
    postgres: Postgres,
    redis: Redis,
    temporal: Temporal,
    kafka_clusters: KafkaClusters,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ce.CheckoutEnv]:
    e = ce.start(
        tmp_path_factory.mktemp("checkout"),
        postgres,
        redis,
        temporal,
        kafka_clusters.get(h.REGION).bootstrap,
        webhooks=True,
        # the saga's durable timer for a shopper action (900 s by default)
        orders_extra={"ORDERS_SHOPPER_ACTION_TIMEOUT_SECONDS": str(ACTION_TIMEOUT_S)},
    )
    try:
        yield e
    finally:
        e.stop()


@pytest.fixture(autouse=True)
def _no_faults(env: ce.CheckoutEnv) -> Iterator[None]:
    yield
    env.sim.admin("DELETE", "faults")


def new_sku(env: ce.CheckoutEnv, stock: int) -> str:
    """``tee`` (in the pricing catalog) with its stock set to ``stock`` for this test."""
    sku = "tee"
    r = httpx.put(f"{env.inventory.url}/v1/stock/{sku}", json={"available": stock}, timeout=10)
    assert r.status_code == 200
    return sku


def body(checkout_id: str, sku: str = "tee", qty: int = 1, market: str = "DE") -> dict[str, Any]:
    return {
        "checkout_id": checkout_id,
        "market": market,
        "currency": "EUR",
        "lines": [{"sku": sku, "quantity": qty}],
        "payment_method_token": ph.TOKEN,
    }


async def wait_order(client: httpx.AsyncClient, cid: str, state: str, wait_s: float = 60) -> dict:
    deadline = time.monotonic() + wait_s
    last: Any = None
    while time.monotonic() < deadline:
        resp = await client.get(f"/v1/orders/{cid}")
        last = resp.json()
        if resp.status_code == 200 and last["state"] == state:
            return dict(last)
        await asyncio.sleep(0.2)
    raise AssertionError(f"order {cid} never reached {state}: {last}")


async def stock(env: ce.CheckoutEnv, sku: str) -> int:
    async with httpx.AsyncClient(timeout=10) as c:
        return int((await c.get(f"{env.inventory.url}/v1/stock/{sku}")).json()["available"])


async def payment_state(env: ce.CheckoutEnv, cid: str) -> str:
    async with httpx.AsyncClient(timeout=10) as c:
        return str((await c.get(f"{env.payments.url}/v1/payments/{cid}")).json()["state"])


async def test_checkout_places_then_captures_and_requests_fulfilment(env: ce.CheckoutEnv) -> None:
    sku = new_sku(env, 10)
    cid = f"co-{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(base_url=env.orders.url, timeout=60) as client:
        key = {"Idempotency-Key": f"k-{cid}"}
        resp = await client.post("/v1/checkouts", json=body(cid, sku, 2), headers=key)
        assert resp.status_code == 201, resp.text
        placed = resp.json()
        assert placed["state"] == "placed"
        assert placed["total"] == 2 * 1999 + 499  # DE, VAT included, standard shipping
        # the same checkout again: the same answer (one workflow per checkout)
        again = await client.post("/v1/checkouts", json=body(cid, sku, 2))
        assert again.status_code == 201
        assert again.json() == placed
        replay = await client.post("/v1/checkouts", json=body(cid, sku, 2), headers=key)
        assert replay.headers.get("Idempotent-Replayed") == "true"
        order = await wait_order(client, cid, "fulfilment_requested")
        assert order["total"] == placed["total"]
    assert await payment_state(env, cid) == "captured"
    assert await stock(env, sku) == 8
    for topic, kind in (
        ("checkout.order-placed.DE", "ORDER_PLACED"),
        ("checkout.payment-captured.DE", "PAYMENT_CAPTURED"),
        ("checkout.fulfillment-requested.DE", "FULFILLMENT_REQUESTED"),
    ):
        mine = await consume_all(
            env.kafka_bootstrap, topic, 1, wait_s=30, mine=lambda e: e["data"]["checkoutId"] == cid
        )
        assert mine, f"no {kind} for {cid} on {topic}"
        assert {e["type"] for e in mine} == {kind}
        assert len({e["eventId"] for e in mine}) == 1


async def test_declined_payment_releases_stock(env: ce.CheckoutEnv) -> None:
    sku = new_sku(env, 5)
    env.sim.faults({"kind": "decline", "declineClass": "hard", "operation": "authorize"})
    cid = f"co-{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(base_url=env.orders.url, timeout=60) as client:
        resp = await client.post("/v1/checkouts", json=body(cid, sku, 3))
        problem = h.assert_problem(resp, 402)
        assert problem["reason"] == "declined"
        h.assert_problem(await client.get(f"/v1/orders/{cid}"), 404)
    assert await stock(env, sku) == 5
    assert await payment_state(env, cid) == "declined"
    conn = await asyncpg.connect(env.orders_env["DATABASE_URL"])
    try:
        assert (
            await conn.fetchval("SELECT reason FROM checkout_failures WHERE checkout_id = $1", cid)
            == "declined"
        )
    finally:
        await conn.close()


async def test_out_of_stock_and_foreign_market(env: ce.CheckoutEnv) -> None:
    sku = new_sku(env, 1)
    async with httpx.AsyncClient(base_url=env.orders.url, timeout=60) as client:
        resp = await client.post("/v1/checkouts", json=body(f"co-{uuid.uuid4().hex[:10]}", sku, 2))
        assert h.assert_problem(resp, 409)["reason"] == "out-of-stock"
        foreign = await client.post(
            "/v1/checkouts",
            json={**body(f"co-{uuid.uuid4().hex[:10]}"), "currency": "USD", "market": "US"},
        )
        assert h.assert_problem(foreign, 409)["writer"] == h.PEER
        bad = await client.post("/v1/checkouts", json={**body("x"), "lines": []})
        assert h.assert_problem(bad, 422)["field"] == "lines"
    assert await stock(env, sku) == 1


async def test_capture_failure_compensates_dead_letters_and_replays(env: ce.CheckoutEnv) -> None:
    sku = new_sku(env, 4)
    env.sim.faults({"kind": "error_5xx", "operation": "capture"})
    cid = f"co-{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(base_url=env.orders.url, timeout=60) as client:
        resp = await client.post("/v1/checkouts", json=body(cid, sku, 1))
        assert resp.status_code == 201, resp.text  # placed; the capture fails afterwards
        await wait_order(client, cid, "capture_failed", wait_s=90)
    assert await stock(env, sku) == 4
    assert await payment_state(env, cid) == "voided"

    listed = await asyncio.to_thread(ce.dlq_cli, env, "list", "--wait", "5")
    assert listed.returncode == 0, listed.stderr
    events = [json.loads(line) for line in listed.stdout.splitlines()]
    mine = [e for e in events if e["data"].get("checkoutId") == cid]
    assert [e["type"] for e in mine] == ["PAYMENT_CAPTURE_FAILED"]

    env.sim.admin("DELETE", "faults")
    for _ in range(2):  # a replay (a compensation run again) changes nothing the second time
        done = await asyncio.to_thread(ce.dlq_cli, env, "replay", mine[0]["eventId"], "--wait", "5")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)["result"]
        assert result["order_state"] == "compensated"
        assert result["payment"] == "voided"
        assert result["stock"] == "released"
        assert await stock(env, sku) == 4
    missing = await asyncio.to_thread(ce.dlq_cli, env, "replay", str(uuid.uuid4()), "--wait", "1")
    assert missing.returncode == 1
    assert "no DLQ event" in missing.stderr
    assert "Traceback" not in missing.stderr


async def test_a_checkout_is_one_workflow_task_and_its_history_replays(
    env: ce.CheckoutEnv, temporal: Temporal
) -> None:
    """The saga's shape: a checkout that goes well is one workflow task (eagerly started in the
    orders process) with three local-activity markers (place, capture, complete), no activity
    task, no update; the recorded history replays on the current code."""
    sku = new_sku(env, 10)
    cid = f"co-{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(base_url=env.orders.url, timeout=60) as client:
        resp = await client.post("/v1/checkouts", json=body(cid, sku))
        assert resp.status_code == 201, resp.text
        await wait_order(client, cid, "fulfilment_requested")
        # the answer came from this process's own worker (eager start), not through Temporal
        metrics = (await client.get("/metrics")).text
        assert 'checkout_answers_total{via="local"}' in metrics, metrics[-2000:]
    tc = await Client.connect(temporal.address, namespace=temporal.namespace)
    handle = tc.get_workflow_handle(f"checkout-{cid}")
    assert (await handle.result())["final"] == "fulfilment_requested"
    hist = await handle.fetch_history()
    kinds = [EventType.Name(e.event_type) for e in hist.events]
    assert kinds.count("EVENT_TYPE_WORKFLOW_TASK_COMPLETED") == 1, kinds
    assert kinds.count("EVENT_TYPE_MARKER_RECORDED") == 3, kinds
    assert not [k for k in kinds if "ACTIVITY_TASK" in k or "UPDATE" in k], kinds
    replayer = Replayer(workflows=[CheckoutSagaWorkflow, CheckoutWorkflow])
    result = await replayer.replay_workflow(hist, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


async def history_kinds(temporal: Temporal, cid: str) -> list[str]:
    tc = await Client.connect(temporal.address, namespace=temporal.namespace)
    hist = await tc.get_workflow_handle(f"checkout-{cid}").fetch_history()
    return [EventType.Name(e.event_type) for e in hist.events]


async def test_3ds_action_goes_to_the_shopper_and_the_webhook_signals_the_saga(
    env: ce.CheckoutEnv, temporal: Temporal
) -> None:
    sku = new_sku(env, 4)
    cid = f"co-{uuid.uuid4().hex[:10]}"
    env.sim.faults({"kind": "three_ds", "provider": "stripe", "operation": "authorize", "count": 1})
    async with httpx.AsyncClient(base_url=env.orders.url, timeout=60) as client:
        resp = await client.post("/v1/checkouts", json=body(cid, sku, 1))
        assert resp.status_code == 201, resp.text
        payment = resp.json()["payment"]
        assert payment["state"] == "requires_action"
        assert payment["action"]["type"] == "redirect_to_url"  # where the shopper's browser goes
        # the shopper passes the challenge; Stripe's webhook authorizes; payments signals the
        # saga, which captures well before its timer
        await wait_order(client, cid, "fulfilment_requested", wait_s=ACTION_TIMEOUT_S - 3)
    assert await payment_state(env, cid) == "captured"
    kinds = await history_kinds(temporal, cid)
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED" in kinds, kinds
    assert "EVENT_TYPE_TIMER_STARTED" in kinds, kinds  # the bound, a durable timer
    async with httpx.AsyncClient(timeout=10) as c:
        metrics = (await c.get(f"{env.payments.url}/metrics")).text
    assert 'payments_saga_signals_total{outcome="sent"}' in metrics, metrics[-1500:]
    assert "EVENT_TYPE_TIMER_FIRED" not in kinds, kinds


@pytest.fixture
def shopper_is_the_test(env: ce.CheckoutEnv) -> Iterator[None]:
    """The next card needs 3-D Secure, nobody but the test completes it, and the provider's
    webhook is late (10 min): only the shopper's return can decide."""
    env.sim.admin("POST", "settings", {"autoCompleteMs": -1})
    env.sim.faults(
        {"kind": "three_ds", "provider": "stripe", "operation": "authorize", "count": 1},
        {"kind": "webhook_delay", "latencyMs": 600_000},
    )
    yield
    env.sim.admin("POST", "settings", {"autoCompleteMs": 5})


async def waiting_for_the_shopper(
    env: ce.CheckoutEnv, client: httpx.AsyncClient, cid: str, sku: str
) -> str:
    """Place the checkout; it waits for the shopper: the provider's reference of its payment."""
    resp = await client.post("/v1/checkouts", json=body(cid, sku, 1))
    assert resp.json()["payment"]["state"] == "requires_action", resp.text
    payment = (await client.get(f"{env.payments.url}/v1/payments/{cid}")).json()
    return str(payment["psp_reference"])


@pytest.mark.usefixtures("shopper_is_the_test")
async def test_a_checkout_waiting_for_3ds_completes_when_the_shopper_posts_details(
    env: ce.CheckoutEnv, temporal: Temporal
) -> None:
    """No webhook in time (delayed 10 min): the shopper's return (POST .../payment-details)
    is what authorizes, and the saga captures on payments' signal, not on a poll."""
    sku = new_sku(env, 4)
    cid = f"co-{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(base_url=env.orders.url, timeout=60) as client:
        ref = await waiting_for_the_shopper(env, client, cid, sku)
        early = await client.post(
            f"/v1/checkouts/{cid}/payment-details", json={"market": "DE", "details": {}}
        )
        assert (early.status_code, early.json()["state"]) == (200, "requires_action")
        wrong = await client.post(
            f"/v1/checkouts/{cid}/payment-details", json={"market": "FR", "details": {}}
        )
        assert h.assert_problem(wrong, 422)["field"] == "market"
        unknown = await client.post(
            "/v1/checkouts/co-nope/payment-details", json={"market": "DE", "details": {}}
        )
        h.assert_problem(unknown, 404)
        shopper = f"shopper/{ref}/complete"
        env.sim.admin("POST", shopper, {"outcome": "authorized"})
        started = time.monotonic()
        key = {"Idempotency-Key": f"details-{cid}"}
        path, done = f"/v1/checkouts/{cid}/payment-details", {"market": "DE", "details": {}}
        back = await client.post(path, json=done, headers=key)
        assert back.status_code == 200, back.text
        assert back.json() == {"checkout_id": cid, "state": "authorized", "action": None}
        again = await client.post(path, json=done, headers=key)
        assert (again.json(), again.headers.get("idempotent-replayed")) == (back.json(), "true")
        other = await client.post(path, json={**done, "details": {"x": "y"}}, headers=key)
        h.assert_problem(other, 422)  # the same key with another body
        await wait_order(client, cid, "fulfilment_requested", wait_s=ACTION_TIMEOUT_S - 3)
        took = time.monotonic() - started
    assert took < ACTION_TIMEOUT_S - 3, took
    assert await payment_state(env, cid) == "captured"
    [charge] = env.sim.payments(cid)  # one charge, captured in full
    assert (charge["status"], charge["captured"]) == ("captured", charge["amount"]), charge
    kinds = await history_kinds(temporal, cid)
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED" in kinds, kinds
    assert "EVENT_TYPE_TIMER_FIRED" not in kinds, kinds


@pytest.mark.usefixtures("shopper_is_the_test")
async def test_a_shopper_who_fails_3ds_gets_402_and_the_order_is_compensated(
    env: ce.CheckoutEnv, temporal: Temporal
) -> None:
    sku = new_sku(env, 4)
    cid = f"co-{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(base_url=env.orders.url, timeout=60) as client:
        ref = await waiting_for_the_shopper(env, client, cid, sku)
        shopper = f"shopper/{ref}/complete"
        env.sim.admin("POST", shopper, {"outcome": "declined"})
        back = await client.post(
            f"/v1/checkouts/{cid}/payment-details", json={"market": "DE", "details": {}}
        )
        assert h.assert_problem(back, 402)["reason"] == "declined"
        await wait_order(client, cid, "compensated", wait_s=ACTION_TIMEOUT_S - 3)
    assert await payment_state(env, cid) == "declined"
    assert await stock(env, sku) == 4
    assert [p["captured"] for p in env.sim.payments(cid)] == [0]
    tc = await Client.connect(temporal.address, namespace=temporal.namespace)
    result = await tc.get_workflow_handle(f"checkout-{cid}").result()
    assert result["final"] == "payment_declined"


async def test_an_action_the_shopper_never_completes_is_voided_at_the_deadline(
    env: ce.CheckoutEnv, temporal: Temporal
) -> None:
    sku = new_sku(env, 4)
    cid = f"co-{uuid.uuid4().hex[:10]}"
    env.sim.admin("POST", "settings", {"autoCompleteMs": -1})  # the shopper walks away
    env.sim.faults({"kind": "three_ds", "provider": "stripe", "operation": "authorize", "count": 1})
    try:
        async with httpx.AsyncClient(base_url=env.orders.url, timeout=60) as client:
            resp = await client.post("/v1/checkouts", json=body(cid, sku, 1))
            assert resp.json()["payment"]["state"] == "requires_action", resp.text
            started = time.monotonic()
            await wait_order(client, cid, "compensated", wait_s=ACTION_TIMEOUT_S + 30)
            took = time.monotonic() - started
    finally:
        env.sim.admin("POST", "settings", {"autoCompleteMs": 5})
    assert took >= ACTION_TIMEOUT_S - 2, took  # not before the bound
    assert await payment_state(env, cid) in ("voided", "void_pending")
    assert await stock(env, sku) == 4
    # never authorized (the challenge was never passed), never captured, and cancelled
    assert [(p["status"], p["captured"]) for p in env.sim.payments(cid)] == [("voided", 0)]
    tc = await Client.connect(temporal.address, namespace=temporal.namespace)
    result = await tc.get_workflow_handle(f"checkout-{cid}").result()
    assert result["final"] == "action_expired"
    assert "EVENT_TYPE_TIMER_FIRED" in await history_kinds(temporal, cid)
    # an abandoned action is no capture failure: nothing for the DLQ
    conn = await asyncpg.connect(env.orders_env["DATABASE_URL"])
    try:
        assert await conn.fetchval("SELECT state FROM orders WHERE checkout_id = $1", cid) == (
            "compensated"
        )
    finally:
        await conn.close()


async def test_a_token_payments_refuses_is_a_422_not_a_dependency_failure(
    env: ce.CheckoutEnv,
) -> None:
    sku = new_sku(env, 2)
    cid = f"co-{uuid.uuid4().hex[:10]}"
    bad = {**body(cid, sku, 1), "payment_method_token": {"stripe": "card_4242", "cvc": "123"}}
    async with httpx.AsyncClient(base_url=env.orders.url, timeout=60) as client:
        problem = h.assert_problem(await client.post("/v1/checkouts", json=bad), 422)
        assert problem["reason"] == "payment-method-refused"
    assert await stock(env, sku) == 2  # released
