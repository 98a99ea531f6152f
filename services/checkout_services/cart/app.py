"""The cart app: carts in Redis with a TTL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis
from fastapi import FastAPI

from checkout_services.cart import router
from checkout_services.cart.service import CartService
from checkout_services.common import app as common_app
from checkout_services.common import metrics, principal, settings


@dataclass(frozen=True)
class Settings:
    common: settings.CommonSettings
    cart_ttl_seconds: int = 7 * 24 * 3600

    @classmethod
    def from_env(cls) -> Settings:
        ttl = settings.env_int("CART_TTL_SECONDS", 7 * 24 * 3600)
        if ttl < 1:
            raise settings.SettingsError("CART_TTL_SECONDS must be >= 1")
        return cls(common=settings.CommonSettings.from_env(redis=True), cart_ttl_seconds=ttl)


def create_app(cfg: Settings | None = None) -> FastAPI:
    service_metrics = metrics.ServiceMetrics("cart")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        s = cfg or Settings.from_env()
        settings.load_region_config(s.common.region_config_file)
        principal.install(app.state)  # every cart route is reached through the gateway only
        redis = aioredis.Redis.from_url(s.common.redis_url)
        try:
            app.state.service = CartService(redis, s.cart_ttl_seconds)
            app.state.health_checks = {"redis": redis.ping}
            yield
        finally:
            await redis.aclose()

    app = common_app.create(
        service="cart",
        description="Shopping carts in Redis with a TTL.",
        lifespan=lifespan,
        service_metrics=service_metrics,
    )
    app.include_router(router.router)
    return app
