"""``checkout-services dlq`` reads each DLQ event once (redeliveries dropped through
common.dedupe) and survives records that are not DLQ events; real Kafka."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path

import pytest
import services_harness as h
from aiokafka import AIOKafkaProducer

from checkout_services.common import dlq
from checkout_stack.pytest_plugin import KafkaClusters

pytestmark = pytest.mark.stack


def event(event_type: str, checkout_id: str) -> bytes:
    return json.dumps(
        {
            "eventId": str(uuid.uuid4()),
            "type": event_type,
            "key": checkout_id,
            "occurredAt": "2026-11-25T00:00:00+00:00",
            "data": {"checkoutId": checkout_id},
        }
    ).encode()


async def publish(bootstrap: str, records: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, value in records:
            await producer.send_and_wait(topic, value=value)
    finally:
        await producer.stop()


async def test_list_drops_redelivered_events_and_skips_foreign_records(
    kafka_clusters: KafkaClusters, tmp_path: Path
) -> None:
    bootstrap = kafka_clusters.get(h.REGION).bootstrap
    tag = uuid.uuid4().hex[:8]
    failed, expired = f"dlq-failed-{tag}", f"dlq-expired-{tag}"
    first, second, third = (
        event("PAYMENT_CAPTURE_FAILED", "co-1"),
        event("PAYMENT_CAPTURE_FAILED", "co-2"),
        event("RESERVATION_EXPIRED", "co-3"),
    )
    # at-least-once: the relay re-published `first` after a crash, MM2 delivered `third` twice
    await publish(
        bootstrap,
        [
            (failed, first),
            (failed, second),
            (failed, first),
            (failed, b"not json"),
            (expired, third),
            (expired, third),
        ],
    )

    events = await dlq.read(bootstrap, [failed, expired], wait_s=4.0)
    ids = sorted(e["eventId"] for e in events)
    assert ids == sorted(json.loads(v)["eventId"] for v in (first, second, third))
    assert {e["eventId"]: e["offset"] for e in events if e["topic"] == failed} == {
        json.loads(first)["eventId"]: 0,  # the first delivery is the one kept
        json.loads(second)["eventId"]: 1,
    }

    # the CLI prints the same: each event once, one JSON object a line, no traceback
    region = tmp_path / "region.json"
    region.write_text(
        json.dumps(
            h.region_config(
                paymentCaptureFailedDlq=failed,
                reservationExpiredDlq=expired,
            )
        )
    )
    out = await asyncio.to_thread(
        subprocess.run,
        [str(h.BIN), "dlq", "list", "--bootstrap", bootstrap, "--wait", "4"],
        env={"REGION_CONFIG_FILE": str(region), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    printed = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(e["eventId"] for e in printed) == ids
    assert f"skipped {failed}@3" in out.stderr
    assert "Traceback" not in out.stderr
