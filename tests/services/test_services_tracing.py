"""OpenTelemetry: one checkout is one trace across the services (real processes, real
PostgreSQL, Redis, Kafka, Temporal), exported over OTLP/HTTP to a real OTLP endpoint.

The receiver below is a minimal OTLP/HTTP trace collector: it serves ``POST /v1/traces`` with
``application/x-protobuf`` bodies, decodes ``ExportTraceServiceRequest`` with the protocol's
own generated classes (opentelemetry-proto) and answers ``ExportTraceServiceResponse``, as a
collector does. The services export to it with the SDK's stock OTLP/HTTP exporter.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import checkout_env as ce
import httpx
import pytest
import services_harness as h
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from test_services_orders import body, new_sku, wait_order

from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis
from checkout_stack.components.temporal import Temporal
from checkout_stack.pytest_plugin import KafkaClusters

pytestmark = pytest.mark.stack

KIND = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


class OtlpReceiver:
    """OTLP/HTTP trace receiver on loopback (protobuf encoding, gzip or not)."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.requests = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                if self.headers.get("Content-Type") != "application/x-protobuf":
                    self.send_error(415)
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(raw)
                receiver.add(request)
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, request: ExportTraceServiceRequest) -> None:
        spans = []
        for rs in request.resource_spans:
            resource = {a.key: _value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    spans.append(
                        Span(
                            service=str(resource.get("service.name")),
                            name=s.name,
                            kind=KIND[s.kind],
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_id=s.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in s.attributes},
                        )
                    )
        with self._lock:
            self.requests += 1
            self.spans += spans

    def trace(self, trace_id: str) -> list[Span]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _value(v: Any) -> Any:
    return getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="module")
def traced(
    receiver: OtlpReceiver,
    postgres: Postgres,
    redis: Redis,
    temporal: Temporal,
    kafka_clusters: KafkaClusters,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ce.CheckoutEnv, h.ServiceProc]]:
    workdir = tmp_path_factory.mktemp("tracing")
    with pytest.MonkeyPatch.context() as mp:
        # every process of the region inherits these: tracing on, exported every 100 ms
        mp.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        mp.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        e = ce.start(
            workdir, postgres, redis, temporal, kafka_clusters.get(h.REGION).bootstrap, redis_db=6
        )
        cart = h.ServiceProc(
            "cart",
            workdir,
            {
                "REGION_CONFIG_FILE": e.orders_env["REGION_CONFIG_FILE"],
                "FLEET_ROUTING_FILE": e.orders_env["FLEET_ROUTING_FILE"],
                "REDIS_URL": e.orders_env["REDIS_URL"],
            },
        ).start()
    try:
        yield e, cart
    finally:
        cart.stop()
        e.stop()


def ancestors(span: Span, by_id: dict[str, Span]) -> list[Span]:
    chain = []
    while span.parent_id in by_id:
        span = by_id[span.parent_id]
        chain.append(span)
    return chain


def unrooted(spans: list[Span], root_id: str) -> list[Span]:
    """The spans whose chain of parents does not reach the edge's span ``root_id``."""
    by_id = {s.span_id: s for s in spans}
    out = []
    for s in spans:
        chain = ancestors(s, by_id)
        if (chain[-1] if chain else s).parent_id != root_id:
            out.append(s)
    return out


async def record_headers(bootstrap: str, topic: str, checkout_id: str) -> dict[str, bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for r in records:
                    if checkout_id.encode() in r.value:
                        return dict(r.headers)
    finally:
        await consumer.stop()
    raise AssertionError(f"no record of {checkout_id} on {topic}")


async def test_one_checkout_is_one_trace_across_the_services(
    traced: tuple[ce.CheckoutEnv, h.ServiceProc], receiver: OtlpReceiver
) -> None:
    env, cart = traced
    # the edge (a browser or the gateway) starts the trace: W3C traceparent on every call
    trace_id, root_id = secrets.token_hex(16), secrets.token_hex(8)
    edge = {"traceparent": f"00-{trace_id}-{root_id}-01"}
    sku = new_sku(env, 10)
    cid = f"co-{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(timeout=60, headers=edge) as client:
        created = await client.post(
            f"{cart.url}/v1/carts", json={"market": "DE", "currency": "EUR"}
        )
        assert created.status_code == 201, created.text
        cart_id = created.json()["cart_id"]
        put = await client.put(f"{cart.url}/v1/carts/{cart_id}/items/{sku}", json={"quantity": 1})
        assert put.status_code == 200, put.text
        resp = await client.post(f"{env.orders.url}/v1/checkouts", json=body(cid, sku, 1))
        assert resp.status_code == 201, resp.text
    async with httpx.AsyncClient(base_url=env.orders.url, timeout=60) as plain:
        await wait_order(plain, cid, "fulfilment_requested", wait_s=90)

    services = {"checkout-cart", "checkout-pricing", "checkout-inventory", "checkout-payments"}
    services.add("checkout-orders")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        spans = receiver.trace(trace_id)
        seen = {s.service for s in spans}
        producers = [s for s in spans if s.kind == "PRODUCER"]
        # and every span's parent has arrived: a server span is exported when it ends, after
        # its children (a loaded CI run checked while inventory's server span was in flight)
        if services <= seen and len(producers) >= 3 and unrooted(spans, root_id) == []:
            break
        await asyncio.sleep(0.5)
    spans = receiver.trace(trace_id)
    by_id = {s.span_id: s for s in spans}
    assert services <= {s.service for s in spans}, sorted({s.service for s in spans})

    # one tree: every span of the trace hangs, through parent links, off the edge's span
    for s in spans:
        chain = ancestors(s, by_id)
        top = chain[-1] if chain else s
        assert top.parent_id == root_id, (s, top)

    def servers(service: str) -> list[Span]:
        return [s for s in spans if s.service == service and s.kind == "SERVER"]

    assert servers("checkout-cart")
    assert all(s.parent_id == root_id for s in servers("checkout-cart"))
    top_orders = [s for s in servers("checkout-orders") if s.parent_id == root_id]
    assert len(top_orders) == 1, [
        (s.name, s.attributes) for s in spans if s.service == "checkout-orders"
    ]
    (checkout,) = top_orders
    # pricing, inventory and payments are called by the saga: their server spans descend
    # from the checkout request through Temporal (workflow, activities) and httpx client spans
    for service in ("checkout-pricing", "checkout-inventory", "checkout-payments"):
        assert servers(service), service
        for server in servers(service):
            chain = ancestors(server, by_id)
            assert (chain[0].kind, chain[0].service) == ("CLIENT", "checkout-orders"), chain[0]
            assert checkout in chain, (service, [c.name for c in chain])
            assert any("Activity" in c.name for c in chain), [c.name for c in chain]
    # storage spans in the trace: PostgreSQL (asyncpg), Redis
    assert any(s.attributes.get("db.system") == "postgresql" for s in spans)
    assert any(s.attributes.get("db.system") == "redis" for s in spans)
    # the outbox relay published the saga's events under the checkout's trace, and the Kafka
    # records carry it in their headers
    topics = {s.attributes.get("messaging.destination.name") for s in spans if s.kind == "PRODUCER"}
    assert {
        "checkout.order-placed.DE",
        "checkout.payment-captured.DE",
        "checkout.fulfillment-requested.DE",
    } <= topics
    headers = await record_headers(env.kafka_bootstrap, "checkout.order-placed.DE", cid)
    assert headers["traceparent"].decode().split("-")[1] == trace_id


def test_tracing_off_imports_no_opentelemetry(tmp_path: Path) -> None:
    """Off (the default): building a service loads no OpenTelemetry tracing SDK, exporter or
    instrumentation, adds no middleware and sets no tracer provider, so the request path is
    the untraced one (FastAPI itself imports the OpenTelemetry API, whose no-op provider
    keeps its native telemetry off)."""
    code = (
        "import sys\n"
        "from checkout_services.common import runner, tracing\n"
        "from checkout_services.cart import main\n"
        "assert tracing.setup('cart') is False\n"
        "app = main.build()\n"
        "names = [m.cls.__name__ for m in app.user_middleware]\n"
        "assert 'OpenTelemetryMiddleware' not in names, names\n"
        "assert names == ['RefuseCardNumbers', 'RequestIdMiddleware', 'MetricsMiddleware'], names\n"
        "from opentelemetry import trace\n"
        "assert type(trace.get_tracer_provider()).__name__ == 'ProxyTracerProvider'\n"
        "assert tracing.temporal_interceptors() == []\n"
        "assert tracing.current_carrier() is None\n"
        # (redis-py imports opentelemetry.sdk.metrics itself when present: import time only)
        "prefixes = ('opentelemetry.sdk.trace', 'opentelemetry.exporter',\n"
        "    'opentelemetry.instrumentation', 'temporalio.contrib.opentelemetry')\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(prefixes))\n"
        "print(loaded)\n"
        "assert not loaded, loaded\n"
    )
    env = (
        {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        | h.write_configs(tmp_path)
        | {"REDIS_URL": "redis://127.0.0.1:1/0"}
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_tracing_on_without_the_extra_is_a_clear_settings_error(tmp_path: Path) -> None:
    """A process that has tracing switched on but cannot import the SDK exits 2 naming the fix
    (simulated by hiding the SDK package from the import system)."""
    code = (
        "import sys\n"
        "sys.modules['opentelemetry.sdk'] = None\n"
        "from checkout_services.common import tracing, settings\n"
        "try:\n"
        "    tracing.setup('cart')\n"
        "except settings.SettingsError as exc:\n"
        "    print(exc)\n"
        "    raise SystemExit(2)\n"
    )
    env = dict(os.environ) | {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "checkout-operator[services,tracing]" in done.stdout


async def test_dlq_replay_joins_the_trace_of_the_dead_lettered_event(
    traced: tuple[ce.CheckoutEnv, h.ServiceProc], receiver: OtlpReceiver
) -> None:
    """A DLQ record carries its checkout's traceparent; ``dlq replay`` (tracing on) calls the
    orders service inside that trace."""
    env, _ = traced
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    event_id = str(uuid.uuid4())
    cid = f"co-{uuid.uuid4().hex[:10]}"  # no such order: the compensation has nothing to undo
    producer = AIOKafkaProducer(bootstrap_servers=env.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            "checkout.dlq.payment-capture-failed",
            value=json.dumps(
                {
                    "eventId": event_id,
                    "type": "PAYMENT_CAPTURE_FAILED",
                    "key": cid,
                    "occurredAt": "2026-11-25T00:00:00+00:00",
                    "data": {"checkoutId": cid},
                }
            ).encode(),
            headers=[("traceparent", f"00-{trace_id}-{parent_id}-01".encode())],
        )
    finally:
        await producer.stop()
    done = await asyncio.to_thread(
        subprocess.run,
        [str(h.BIN), "dlq", "replay", event_id, "--bootstrap", env.kafka_bootstrap, "--wait", "5"],
        env={
            **env.orders_env,
            "PATH": "/usr/bin:/bin",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"]["payment"] == "nothing-to-void"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        spans = receiver.trace(trace_id)
        if any(s.service == "checkout-orders" and s.kind == "SERVER" for s in spans):
            break
        await asyncio.sleep(0.5)
    spans = receiver.trace(trace_id)
    by_id = {s.span_id: s for s in spans}
    (server,) = [s for s in spans if s.service == "checkout-orders" and s.kind == "SERVER"]
    client = by_id[server.parent_id]
    assert (client.service, client.kind) == ("checkout-dlq", "CLIENT")
    assert client.parent_id == parent_id  # the dead-lettered record's context
