"""OpenTelemetry tracing of the checkout services: off by default.

On when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set and
``OTEL_SDK_DISABLED`` is not ``true`` (the SDK's own switches, so the usual collector settings
work: ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``,
``OTEL_BSP_SCHEDULE_DELAY``, ...). Spans are exported over OTLP/HTTP (protobuf).

When on, :func:`setup` (called once per process, before the app is built) installs the SDK and
instruments: every request (ASGI, :func:`instrument_app`), outgoing httpx calls (W3C
``traceparent`` sent on), asyncpg, Redis, aiokafka produce/consume (context in the record
headers), and Temporal (:func:`temporal_interceptors`: client -> workflow -> activities), so
one checkout is one trace across the services. The outbox keeps the context of the
transaction that wrote an event (:func:`current_carrier`) and the relay publishes under it
(:func:`attached`), so the Kafka record joins the checkout's trace although it leaves later.

When off, nothing of OpenTelemetry is imported and the request path is unchanged: each hook
returns its input or ``None`` after one boolean check. The SDK packages are the optional
``tracing`` extra; tracing switched on without them is a settings error naming the fix.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any, Final

from checkout_contract import env
from checkout_services.common.settings import SettingsError

log = logging.getLogger("checkout_services.common.tracing")

ENDPOINT_ENVS: Final = (env.OTLP_TRACES_ENDPOINT, env.OTLP_ENDPOINT)
EXCLUDED_URLS: Final = "health/live,health/ready,metrics"
FIX: Final = "install the tracing extra: pip install 'checkout-operator[services,tracing]'"

_state: dict[str, Any] = {}


def enabled() -> bool:
    """Whether this process traces (read once from the environment at :func:`setup`)."""
    if "on" in _state:
        return bool(_state["on"])
    return _wanted()


def _wanted() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(os.environ.get(name) for name in ENDPOINT_ENVS)


def setup(service: str) -> bool:
    """Install the SDK and the instrumentations if tracing is on; returns whether it is.

    Idempotent. Raises :class:`SettingsError` when tracing is on but the extra is missing."""
    if "on" in _state:
        return bool(_state["on"])
    if not _wanted():
        _state["on"] = False
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise SettingsError(
            f"tracing is on ({' or '.join(ENDPOINT_ENVS)} is set) but {exc.name} is missing: {FIX}"
        ) from None
    attributes = {"service.name": f"checkout-{service}", "service.namespace": "checkout"}
    region = os.environ.get(env.REGION)
    if region:
        attributes["cloud.region"] = region
    # Resource.create lets OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES override ours
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()
    AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
    RedisInstrumentor().instrument()
    AIOKafkaInstrumentor().instrument()
    _state.update(on=True, provider=provider)
    return True


def shutdown() -> None:
    """Flush the spans still queued (at process exit)."""
    provider = _state.get("provider")
    if provider is not None:
        provider.shutdown()


def instrument_app(app: Any) -> None:
    """A server span per request (health and metrics routes excluded), as the outermost ASGI
    middleware of ``app`` (call it last, before the app starts). Inside the app's own stack,
    so FastAPI's native request telemetry (recent FastAPI) sees it and does not add a second
    server span."""
    if not enabled():
        return
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    app.add_middleware(
        OpenTelemetryMiddleware, excluded_urls=EXCLUDED_URLS, exclude_spans=["receive", "send"]
    )


def temporal_interceptors() -> list[Any]:
    """For ``Client.connect(interceptors=...)``: the client and the workers made from it carry
    the trace through workflow and activity headers."""
    if not enabled():
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]


def current_carrier() -> dict[str, str] | None:
    """The current span's context as W3C headers (``traceparent``...), or None when off or
    outside a span: stored with an outbox event to publish it into the same trace."""
    if not enabled():
        return None
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


@contextlib.contextmanager
def attached(carrier: Mapping[str, str] | None) -> Iterator[None]:
    """Run the block in the context of ``carrier`` (from :func:`current_carrier`)."""
    if not carrier or not enabled():
        yield
        return
    from opentelemetry import context, propagate

    token = context.attach(propagate.extract(dict(carrier)))
    try:
        yield
    finally:
        context.detach(token)
