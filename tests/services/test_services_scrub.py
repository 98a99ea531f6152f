"""Must-show: a planted card number or e-mail in requests never appears in the logs, the events,
the workflow histories (our traces) or the databases of a whole region after a run.

Real processes (PSP simulator, payments, pricing, inventory, orders) on real PostgreSQL, Redis,
Kafka and Temporal, logging at INFO (access logs on). Card numbers go in bodies, paths and query
strings (refused with 422, never echoed); e-mails go where no e-mail belongs (promo code,
shipping option, a request header). A legitimate checkout runs alongside. Afterwards every log
file, every record of every Kafka topic, every row of the three databases and the histories of
the region's workflows are searched for the planted values.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import checkout_env as ce
import httpx
import payments_harness as ph
import pytest
import services_harness as h
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from temporalio.client import Client

from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis
from checkout_stack.components.temporal import Temporal
from checkout_stack.pytest_plugin import KafkaClusters

pytestmark = pytest.mark.stack

TAG = uuid.uuid4().hex[:6]
PAN = "4000056655665556"  # a Luhn-valid Visa test number
PAN_SPACED = "5200 8282 8282 8210"
PLANTED_EMAIL = f"planted.{TAG}@example.org"


@pytest.fixture(scope="module")
def env(
    postgres: Postgres,
    redis: Redis,
    temporal: Temporal,
    kafka_clusters: KafkaClusters,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ce.CheckoutEnv]:
    e = ce.start_logged(
        tmp_path_factory.mktemp("scrub"),
        postgres,
        redis,
        temporal,
        kafka_clusters.get(h.REGION).bootstrap,
    )
    try:
        yield e
    finally:
        e.stop()


def checkout_body(cid: str, **extra: Any) -> dict[str, Any]:
    return {
        "checkout_id": cid,
        "market": "DE",
        "currency": "EUR",
        "lines": [{"sku": "tee", "quantity": 1}],
        "payment_method_token": ph.TOKEN,
        **extra,
    }


def read_logs(workdir: Path, *more: Path) -> dict[str, str]:
    return {p.name: p.read_text(errors="replace") for p in [*workdir.glob("*.log"), *more]}


async def topics_text(bootstrap: str) -> bytes:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        meta = await consumer._client.fetch_all_metadata()
        tps = [
            TopicPartition(t, p)
            for t in meta.topics()
            if not t.startswith("__")
            for p in meta.partitions_for_topic(t) or ()
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        chunks: list[bytes] = []
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            for records in (await consumer.getmany(*pending, timeout_ms=1000)).values():
                chunks += [(r.key or b"") + b" " + (r.value or b"") for r in records]
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return b"\n".join(chunks)
    finally:
        await consumer.stop()


async def database_text(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        out = []
        for t in tables:
            rows = await conn.fetch(f'SELECT t::text AS row FROM "{t["tablename"]}" t')
            out += [r["row"] for r in rows]
        return "\n".join(out)
    finally:
        await conn.close()


async def histories_text(temporal: Temporal, workflow_ids: list[str]) -> str:
    client = await Client.connect(temporal.address, namespace=temporal.namespace)
    out = []
    for wid in workflow_ids:
        history = await client.get_workflow_handle(wid).fetch_history()
        out.append(history.to_json())
    return "\n".join(out)


async def test_planted_card_numbers_and_emails_leave_no_trace(
    env: ce.CheckoutEnv, temporal: Temporal
) -> None:
    good = f"co-good-{TAG}"
    bad_promo = f"co-promo-{TAG}"
    async with httpx.AsyncClient(timeout=60) as client:
        r = await client.put(f"{env.inventory.url}/v1/stock/tee", json={"available": 50})
        assert r.status_code == 200
        # card numbers: refused before anything reads them, never echoed
        refused = [
            await client.post(
                f"{env.orders.url}/v1/checkouts",
                json=checkout_body(f"co-pan-{TAG}", customer={"customer_id": "c1", "name": PAN}),
            ),
            await client.post(
                f"{env.payments.url}/v1/payments/authorize",
                json={
                    "checkout_id": f"co-pan2-{TAG}",
                    "amount": 1000,
                    "currency": "EUR",
                    "country": "DE",
                    "card_number": PAN_SPACED,
                },
            ),
            await client.get(f"{env.orders.url}/v1/orders/{PAN}"),
            await client.get(f"{env.inventory.url}/v1/stock/tee", params={"pan": PAN}),
        ]
        fields = [resp.json().get("field") for resp in refused]
        assert [resp.status_code for resp in refused] == [422] * 4, [x.text for x in refused]
        assert fields == ["customer.name", "card_number", "path", "query.pan"]
        for resp in refused:
            assert PAN not in resp.text
            assert PAN_SPACED not in resp.text
        # e-mails where none belongs: an unknown promo code, a shipping option, a header
        failed = await client.post(
            f"{env.orders.url}/v1/checkouts",
            json=checkout_body(bad_promo, promo_code=PLANTED_EMAIL),
            headers={"X-Request-Id": f"rid {PLANTED_EMAIL}"},
        )
        assert failed.status_code >= 400
        placed = await client.post(
            f"{env.orders.url}/v1/checkouts",
            json=checkout_body(good),
            headers={"Idempotency-Key": f"k-{TAG}", "X-Debug-Contact": PLANTED_EMAIL},
        )
        assert placed.status_code == 201, placed.text
        shipping = await client.post(
            f"{env.orders.url}/v1/checkouts",
            json=checkout_body(f"co-ship-{TAG}", shipping_option=PLANTED_EMAIL),
        )
        assert shipping.status_code >= 400
        # the order and its events exist (the search below is not vacuous)
        order = await client.get(f"{env.orders.url}/v1/orders/{good}")
        assert order.status_code == 200

    await asyncio.sleep(3)  # the relays publish
    logs = read_logs(env.workdir, env.payments.log)
    assert any(good in text for text in logs.values()), "the logs do not show the run at all"
    for name, text in logs.items():
        assert "--- Logging error ---" not in text, f"a log record failed to format in {name}"
    kafka = await topics_text(env.kafka_bootstrap)
    assert good.encode() in kafka
    dbs = {
        "orders": await database_text(env.orders_env["DATABASE_URL"]),
        "inventory": await database_text(env.inventory.env["DATABASE_URL"]),
        "payments": await database_text(env.payments.env["DATABASE_URL"]),
    }
    assert good in dbs["orders"]
    histories = await histories_text(
        temporal, [f"checkout-{good}", f"checkout-{bad_promo}", f"checkout-co-ship-{TAG}"]
    )
    for secret in (PAN, PAN_SPACED, PLANTED_EMAIL, PAN.replace(" ", "")):
        for name, text in logs.items():
            assert secret not in text, f"{secret} in log {name}"
        assert secret.encode() not in kafka, f"{secret} in a Kafka topic"
        for name, text in dbs.items():
            assert secret not in text, f"{secret} in the {name} database"
        assert secret not in histories, f"{secret} in a workflow history"
