"""The payments FastAPI app: lifespan (pool, migrations, Redis, one httpx client), errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from checkout_services.common import config as region_config
from checkout_services.common import fencing, lease, scrub
from checkout_services.common import http as common_http
from checkout_services.common import settings as common_settings
from checkout_services.payments import (
    db,
    exceptions,
    idempotency,
    metrics,
    reconcile,
    router,
    switchover,
)
from checkout_services.payments.service import PaymentsService
from checkout_services.payments.settings import Settings, load_routing

log = logging.getLogger("checkout_services.payments")
PROBLEM = router.PROBLEM


def field_of(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def create_app(settings: Settings | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cfg = settings or Settings.from_env()
        routing_config = load_routing(cfg.routing_file)
        pool = await db.create_pool(cfg.database_url)
        redis = aioredis.Redis(
            connection_pool=aioredis.BlockingConnectionPool.from_url(
                cfg.redis_url, max_connections=100, timeout=5
            )
        )
        sweeper: asyncio.Task[None] | None = None
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
                moves = switchover.Switchover(service, None, cfg.switchover_void_after_seconds)
                if os.environ.get(lease.NAMESPACE_ENV):
                    # the region's fencing ack waits for its authorizations (and voids)
                    region = common_settings.load_region_config(
                        common_settings.env_str(region_config.CONFIG_FILE_ENV)
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
                    sweeper = asyncio.create_task(
                        reconcile.sweeper(service, cfg.sweep_interval_seconds)
                    )
                yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
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
    app.include_router(router.router)
    # payments carry PSP tokens only: a card-like number is refused before anything reads it
    app.add_middleware(scrub.RefuseCardNumbers)
    scrub.install_logging()

    @app.exception_handler(exceptions.PaymentsError)
    async def payments_error(request: Request, exc: exceptions.PaymentsError) -> JSONResponse:
        return router.problem_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": field_of(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        body = {
            "type": exceptions.TYPE_BASE + "invalid-request",
            "title": "Invalid request",
            "status": 422,
            "detail": f"{first['field']}: {first['message']}",
            "instance": request.url.path,
            "field": first["field"],
            "errors": errors,
        }
        return JSONResponse(body, status_code=422, media_type=PROBLEM)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = {
            "type": "about:blank",
            "title": str(exc.detail),
            "status": exc.status_code,
            "detail": str(exc.detail),
            "instance": request.url.path,
        }
        return JSONResponse(body, status_code=exc.status_code, media_type=PROBLEM)

    @app.exception_handler(RedisError)
    @app.exception_handler(asyncpg.PostgresConnectionError)
    @app.exception_handler(asyncpg.InterfaceError)
    @app.exception_handler(OSError)
    async def dependency_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("dependency unavailable: %s on %s", type(exc).__name__, request.url.path)
        body = {
            "type": exceptions.TYPE_BASE + "dependency-unavailable",
            "title": "A dependency is unavailable",
            "status": 503,
            "detail": f"storage unavailable ({type(exc).__name__}); retry later",
            "instance": request.url.path,
        }
        return JSONResponse(body, status_code=503, media_type=PROBLEM, headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled %s on %s", type(exc).__name__, request.url.path)
        body = {
            "type": exceptions.TYPE_BASE + "internal",
            "title": "Internal error",
            "status": 500,
            "detail": "internal error",
            "instance": request.url.path,
        }
        return JSONResponse(body, status_code=500, media_type=PROBLEM)

    return app
