"""App factory shared by the checkout services: problem+json handlers, request ids, request
latency metrics, health and metrics routes."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI

from checkout_services.common import errors, health, metrics, requestid, scrub, tracing


def create(
    *,
    service: str,
    description: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    service_metrics: metrics.ServiceMetrics,
    unscanned_prefixes: tuple[str, ...] = (),
) -> FastAPI:
    """``unscanned_prefixes``: paths whose bodies a payment provider signs (webhooks), which the
    card-number guard does not read (:class:`scrub.RefuseCardNumbers`)."""
    app = FastAPI(
        title=f"checkout {service}",
        version="0.1.0",
        description=description + " Errors are RFC 9457 problem+json.",
        lifespan=lifespan,
    )
    app.state.metrics = service_metrics
    app.state.health_checks = {}
    errors.install_handlers(app, service)
    app.include_router(health.router())
    app.add_middleware(metrics.MetricsMiddleware, metrics=service_metrics)
    app.add_middleware(requestid.RequestIdMiddleware)
    tracing.instrument_app(app)  # nothing when tracing is off
    # outermost: a card number is refused before anything reads, logs, traces or stores it
    app.add_middleware(scrub.RefuseCardNumbers, skip_prefixes=unscanned_prefixes)
    scrub.install_logging()
    return app
