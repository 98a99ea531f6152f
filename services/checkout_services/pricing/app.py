"""The pricing app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis
from fastapi import FastAPI

from checkout_contract import env
from checkout_services.common import app as common_app
from checkout_services.common import metrics, principal, settings
from checkout_services.pricing import router
from checkout_services.pricing.service import ConfigSource, PricingService


@dataclass(frozen=True)
class Settings:
    common: settings.CommonSettings
    pricing_file: str

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            common=settings.CommonSettings.from_env(redis=True),
            pricing_file=settings.env_str(env.PRICING_CONFIG_FILE),
        )


def create_app(cfg: Settings | None = None) -> FastAPI:
    service_metrics = metrics.ServiceMetrics("pricing")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        s = cfg or Settings.from_env()
        principal.install(app.state)  # quotes: through the gateway (or signed by the saga)
        source = ConfigSource(s.pricing_file)
        source.current()
        redis = aioredis.Redis.from_url(s.common.redis_url)
        try:
            app.state.service = PricingService(source, redis)
            app.state.health_checks = {"redis": redis.ping}
            yield
        finally:
            await redis.aclose()

    app = common_app.create(
        service="pricing",
        description="Prices, promotions (behind feature flags), shipping and tax, frozen in "
        "time-boxed snapshots. Money is integer minor units; computed amounts round half-up.",
        lifespan=lifespan,
        service_metrics=service_metrics,
    )
    app.include_router(router.router)
    return app
