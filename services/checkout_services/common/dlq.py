"""``checkout-services dlq list|replay``: inspect and replay the dead-letter topics.

``list`` prints each DLQ record (one JSON object a line) of PAYMENT_CAPTURE_FAILED and
RESERVATION_EXPIRED, each event once: the topics are delivered at least once (outbox relay,
MirrorMaker 2), so the reader drops redeliveries by event id through ``common.dedupe`` like
every other consumer. ``replay EVENT_ID`` re-drives that event's idempotent compensation through
the owning service: a capture failure -> ``POST <orders>/v1/orders/{id}/compensate``; an
expired reservation -> ``POST <inventory>/v1/reservations/{id}/release``. Both routes refuse
unsigned requests: the call is signed as ``internal/dlq`` with ``CHECKOUT_GATEWAY_KEY``
(:mod:`principal`), which the tool needs as the services do. Replaying twice changes nothing.

With tracing on (``OTEL_EXPORTER_OTLP_ENDPOINT``), reading is traced (consume spans continue the
trace in each record's ``traceparent`` header) and a replay's call runs in the replayed event's
trace, so the compensation shows up in the trace of the checkout that failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from checkout_contract import config, env
from checkout_services.common import dedupe, principal, settings, tracing

_TRACE_HEADERS = ("traceparent", "tracestate")
_carriers: dict[str, dict[str, str]] = {}
"""Event id -> the W3C trace context its record carried (only filled when tracing is on)."""


def add_parser(sub: Any) -> None:
    dlq = sub.add_parser(
        "dlq",
        help="inspect and replay the dead-letter topics",
        description="List or replay DLQ events (PAYMENT_CAPTURE_FAILED, RESERVATION_EXPIRED). "
        "Topics and endpoints come from REGION_CONFIG_FILE; Kafka from KAFKA_BOOTSTRAP_SERVERS.",
    )
    dsub = dlq.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    ls = dsub.add_parser("list", help="print the DLQ events, one JSON object a line")
    ls.add_argument("--bootstrap", default=None, help="Kafka bootstrap (default: env)")
    ls.add_argument("--wait", type=float, default=3.0, help="seconds to read for")
    ls.set_defaults(handler=_list)
    rp = dsub.add_parser("replay", help="re-drive one event's compensation")
    rp.add_argument("event_id")
    rp.add_argument("--bootstrap", default=None)
    rp.add_argument("--wait", type=float, default=3.0)
    rp.set_defaults(handler=_replay)


def _region() -> config.RegionConfig:
    return settings.load_region_config(settings.env_str(env.REGION_CONFIG_FILE))


async def read(bootstrap: str, topics: list[str], wait_s: float) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    out: list[dict[str, Any]] = []
    seen = dedupe.Deduper(window=1_000_000)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while loop.time() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=300)).items():
                for r in records:
                    event = _decode(r.value)
                    if event is None:
                        print(
                            f"checkout-services dlq: skipped {tp.topic}@{r.offset}:"
                            " not a DLQ event (no JSON object with an eventId)",
                            file=sys.stderr,
                        )
                        continue

                    entry = {"topic": tp.topic, "offset": r.offset, **event}
                    if tracing.enabled():
                        carrier = {
                            k: v.decode(errors="replace")
                            for k, v in r.headers
                            if k in _TRACE_HEADERS and v is not None
                        }
                        _carriers.setdefault(str(event["eventId"]), carrier)

                    async def keep(entry: dict[str, Any] = entry) -> None:
                        out.append(entry)

                    await seen.apply_once(str(event["eventId"]), keep)
    finally:
        await consumer.stop()
    return out


def _decode(value: bytes | None) -> dict[str, Any] | None:
    try:
        event = json.loads(value or b"")
    except ValueError:
        return None
    if not isinstance(event, dict) or not event.get("eventId"):
        return None
    return event


def _events(args: argparse.Namespace) -> tuple[config.RegionConfig, list[dict[str, Any]]]:
    region = _region()
    bootstrap = args.bootstrap or settings.env_str(env.KAFKA_BOOTSTRAP_SERVERS)
    topics = [region.topics.payment_capture_failed_dlq, region.topics.reservation_expired_dlq]
    return region, asyncio.run(read(bootstrap, topics, args.wait))


def _list(args: argparse.Namespace) -> int:
    _, events = _events(args)
    for e in events:
        print(json.dumps(e, sort_keys=True))
    return 0


def _replay(args: argparse.Namespace) -> int:
    key = principal.load_key()  # before reading Kafka: without it the replay cannot be sent
    region, events = _events(args)
    event = next((e for e in events if e["eventId"] == args.event_id), None)
    if event is None:
        print(f"checkout-services dlq: no DLQ event {args.event_id}", file=sys.stderr)
        return 1
    cid = event["data"]["checkoutId"]
    if event["type"] == "PAYMENT_CAPTURE_FAILED":
        service, path = "orders", f"/v1/orders/{cid}/compensate"
    else:
        service, path = "inventory", f"/v1/reservations/{cid}/release"
    base = region.endpoints.get(service)
    if not base:
        print(f"checkout-services dlq: no {service} endpoint in the region config", file=sys.stderr)
        return 2
    url = base.rstrip("/") + path
    # both routes take only requests signed with the region's key (common.principal): the
    # replay signs as internal/dlq with CHECKOUT_GATEWAY_KEY (a missing key: exit 2, named)
    target = httpx.URL(url).raw_path.decode("ascii")
    headers = principal.signed_headers(key, "POST", target, principal.internal("dlq"), b"")
    with tracing.attached(_carriers.get(args.event_id)):
        resp = httpx.post(url, headers=headers, timeout=30)
    if resp.status_code >= 400:
        print(
            f"checkout-services dlq: replay failed: {resp.status_code} {resp.text}", file=sys.stderr
        )
        return 1
    print(json.dumps({"replayed": args.event_id, "result": resp.json()}, sort_keys=True))
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        tracing.setup("dlq")  # off unless OTEL_EXPORTER_OTLP_ENDPOINT is set
        code: int = args.handler(args)
    except settings.SettingsError as exc:
        print(f"checkout-services dlq: {exc}", file=sys.stderr)
        return 2
    except (KafkaError, httpx.HTTPError, OSError) as exc:
        print(f"checkout-services dlq: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return code
