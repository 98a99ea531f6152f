"""The gateway app: one shared ``httpx.AsyncClient`` (HTTP/2 where TLS negotiates it,
keep-alive) and one Redis client per app lifespan; the routing table is polled in the
background so readiness reports its freshness."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

import checkout_tasks
from checkout_contract import env
from checkout_services.common import app as common_app
from checkout_services.common import principal, settings
from checkout_services.gateway import (
    auth,
    bodylimit,
    exceptions,
    leases,
    ratelimit,
    router,
    service,
    table,
)
from checkout_services.gateway.config import Settings
from checkout_services.gateway.metrics import GatewayMetrics

log = logging.getLogger("checkout_services.gateway")


def http_client() -> httpx.AsyncClient:
    """Shared by every request of the app: pooled keep-alive connections per upstream/peer."""
    return httpx.AsyncClient(
        http2=True,
        limits=httpx.Limits(
            max_connections=512, max_keepalive_connections=128, keepalive_expiry=60
        ),
        follow_redirects=False,
        trust_env=False,
    )


def create_app(cfg: Settings | None = None, lease_view: leases.LeaseView | None = None) -> FastAPI:
    gm = GatewayMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        s = cfg or Settings.from_env()
        region = settings.load_region_config(s.common.region_config_file)
        routing_table = table.RoutingTable(
            s.common.fleet_routing_file, max_age_s=s.routing_max_age_seconds
        )
        if routing_table.refresh() is None:
            raise settings.SettingsError(routing_table.last_error)
        http = http_client()
        redis = aioredis.Redis.from_url(s.common.redis_url)
        poller: checkout_tasks.Guarded | None = None
        store_view: leases.StoreLeases | None = None
        try:
            view = lease_view
            if view is None:
                store_view = leases.from_env(region.fleet, s.lease_poll_seconds)
                if store_view is None:
                    log.warning(
                        "gateway: %s is not set: writes follow the fleet routing ConfigMap only",
                        env.LEASE_NAMESPACE,
                    )
                    view = leases.RoutingLeases()
                else:
                    await store_view.start()
                    log.info("gateway: writes follow the market Leases of fleet %s", region.fleet)
                    view = store_view
            authenticator = auth.Authenticator(
                s.jwks,
                http,
                issuer=s.issuer,
                audience=s.audience,
                algorithms=s.algorithms,
                max_lifetime_s=s.max_token_lifetime_seconds,
            )
            await authenticator.load()
            app.state.gateway = service.Gateway(
                region=region.region,
                table=routing_table,
                leases=view,
                limiter=ratelimit.Limiter(redis, s.client_limit, s.market_limit, s.bot_window_ms),
                authenticator=authenticator,
                http=http,
                endpoints=dict(region.endpoints),
                metrics=gm,
                bot_threshold=s.bot_threshold,
                upstream_timeout_s=s.upstream_timeout_seconds,
                forward_timeout_s=s.forward_timeout_seconds,
                auth_failures=ratelimit.AuthFailures(redis, s.auth_failure_limit),
                internal_key=principal.load_key(),
            )
            app.state.health_checks = {
                "redis": redis.ping,
                "routing": routing_table.check_fresh,
                "jwks": authenticator.check,
            }
            gm.routing_age.set_function(lambda: min(routing_table.age_s(), 1e9))
            gm.routing_reloads.set_function(lambda: routing_table.reloads)
            poller = checkout_tasks.start(
                "gateway routing poll",
                lambda: routing_table.poll(s.routing_poll_seconds),
                logger=log,
            )
            yield
        finally:
            if poller is not None:
                await poller.stop()
            if store_view is not None:
                await store_view.aclose()
            await http.aclose()
            await redis.aclose()

    app = common_app.create(
        service="gateway",
        description="The region's single entry point: JWT auth, per-client and per-market rate "
        "limits, body limits, request ids and trace context; reads served by this region, "
        "writes sent to the market's write-primary region.",
        lifespan=lifespan,
        service_metrics=gm,
        # as at payments: Adyen's 16-digit pspReferences pass the Luhn check one time in ten,
        # and a refused notification is retried, then dropped, by the provider
        unscanned_prefixes=("/v1/webhooks/",),
    )

    @app.exception_handler(exceptions.GatewayError)
    async def gateway_error(request: Request, exc: exceptions.GatewayError) -> JSONResponse:
        return exceptions.response(exc, request.url.path)

    app.include_router(router.router)

    def openapi() -> dict[str, Any]:
        """The generated document plus the bearer scheme every ``/v1`` route requires."""
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        }
        for path, operations in schema.get("paths", {}).items():
            if path.startswith("/v1/"):
                for operation in operations.values():
                    operation["security"] = [{"bearer": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    max_body = cfg.max_body_bytes if cfg else settings.env_int("GATEWAY_MAX_BODY_BYTES", 65536)
    app.add_middleware(bodylimit.BodyLimitMiddleware, max_bytes=max_body, metrics=gm)
    return app
