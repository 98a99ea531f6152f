"""The payments FastAPI app: lifespan (pool, migrations, Redis, one httpx client), errors."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from fastapi import FastAPI

import checkout_tasks
from checkout_contract import env
from checkout_services.common import errors, fencing, principal, scrub
from checkout_services.common import http as common_http
from checkout_services.common import settings as common_settings
from checkout_services.payments import (
    db,
    idempotency,
    metrics,
    reconcile,
    router,
    saga_signal,
    switchover,
)
from checkout_services.payments.service import PaymentsService
from checkout_services.payments.settings import Settings, load_routing

log = logging.getLogger("checkout_services.payments")


def saga_of(m: metrics.Metrics) -> saga_signal.SagaSignal | None:
    """The signal to the checkout sagas, where the region's Temporal is configured (the
    deployment gives payments ``TEMPORAL_ADDRESS`` and the region config, as orders)."""
    address = os.environ.get(env.TEMPORAL_ADDRESS, "")
    region_file = os.environ.get(env.REGION_CONFIG_FILE, "")
    if not address or not region_file:
        log.info("no Temporal configured: shopper actions reach the saga at its deadline only")
        return None
    region = common_settings.load_region_config(region_file)
    return saga_signal.SagaSignal(address, region.temporal_namespace, m.saga_signals)


def create_app(settings: Settings | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cfg = settings or Settings.from_env()
        principal.install(app.state)  # payment operations: signed by the region's services only
        routing_config = load_routing(cfg.routing_file)
        pool = await db.create_pool(cfg.database_url)
        redis = aioredis.Redis(
            connection_pool=aioredis.BlockingConnectionPool.from_url(
                cfg.redis_url, max_connections=100, timeout=5
            )
        )
        sweeper: checkout_tasks.Guarded | None = None
        signals: saga_signal.SagaSignal | None = None
        leases = contextlib.AsyncExitStack()
        moves: switchover.Switchover | None = None
        try:
            await db.migrate(pool)
            # one shared client, on the lean transport (httpcore's costs ~1 ms CPU per call)
            async with common_http.client(max_connections=200, max_keepalive=100) as http:
                service = PaymentsService(
                    settings=cfg,
                    routing_config=routing_config,
                    repo=db.Repository(pool),
                    idem=idempotency.IdempotencyStore(
                        redis,
                        ttl_seconds=cfg.idempotency_ttl_seconds,
                        in_flight_seconds=cfg.in_flight_seconds,
                    ),
                    http=http,
                    metrics=metrics.Metrics(),
                )
                app.state.service = service
                service.saga = signals = saga_of(service.metrics)
                moves = switchover.Switchover(service, None, cfg.switchover_void_after_seconds)
                if os.environ.get(env.LEASE_NAMESPACE):
                    # the region's fencing ack waits for its authorizations (and voids)
                    region = common_settings.load_region_config(
                        common_settings.env_str(env.REGION_CONFIG_FILE)
                    )
                    moves.keeper = await leases.enter_async_context(
                        fencing.keeper(
                            region, "payments", acknowledge=True, in_flight=moves.in_flight
                        )
                    )
                else:
                    fencing.say_unfenced("payments")
                app.state.switchover = moves
                if cfg.sweep_interval_seconds > 0:
                    sweeper = checkout_tasks.start(
                        "payments reconcile sweeper",
                        lambda: reconcile.sweeper(service, cfg.sweep_interval_seconds),
                        logger=log,
                    )
                yield
        finally:
            if sweeper is not None:
                await sweeper.stop()
            if signals is not None:
                await signals.aclose()
            if moves is not None:
                await moves.aclose()
            await leases.aclose()
            await redis.aclose()
            await pool.close()

    app = FastAPI(
        title="checkout payments",
        version="0.1.0",
        description="Authorize, capture, void and refund across multi-homed PSPs, without "
        "double charges. Errors are RFC 9457 problem+json.",
        lifespan=lifespan,
    )
    app.include_router(router.internal)
    app.include_router(router.router)
    # payments carry PSP tokens only: a card-like number is refused before anything reads it
    app.add_middleware(scrub.RefuseCardNumbers, skip_prefixes=("/v1/webhooks/",))
    scrub.install_logging()

    errors.install_handlers(app, "payments")

    return app
