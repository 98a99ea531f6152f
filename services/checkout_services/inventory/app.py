"""The inventory app: lifespan (pool, migrations, Redis, sweeper, outbox relay)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis
from fastapi import FastAPI
from prometheus_client import Counter

import checkout_tasks
from checkout_services.common import app as common_app
from checkout_services.common import (
    db,
    fencing,
    idempotency,
    metrics,
    outbox,
    principal,
    settings,
    write_guard,
)
from checkout_services.inventory import global_view, router
from checkout_services.inventory.service import InventoryService

log = logging.getLogger("checkout_services.inventory")
MIGRATIONS = (db.COMMON_MIGRATIONS, "checkout_services.inventory.migrations")


@dataclass(frozen=True)
class Settings:
    common: settings.CommonSettings
    sweep_interval_seconds: float = 1.0
    checkpoint_interval_seconds: float = 10.0

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            common=settings.CommonSettings.from_env(database=True, redis=True),
            sweep_interval_seconds=settings.env_float("INVENTORY_SWEEP_INTERVAL_SECONDS", 1.0),
            checkpoint_interval_seconds=settings.env_float(
                "INVENTORY_CHECKPOINT_INTERVAL_SECONDS", 10.0
            ),
        )


async def checkpointer(svc: InventoryService, interval: float) -> None:
    """Publish this region's stock checkpoint every ``interval`` (peers check their view)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await svc.checkpoint()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("stock checkpoint failed: %s", type(exc).__name__)


async def sweeper(svc: InventoryService, interval: float) -> None:
    while True:
        try:
            while await svc.sweep() > 0:
                pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("expiry sweep failed: %s", type(exc).__name__)
        await asyncio.sleep(interval)


def create_app(cfg: Settings | None = None) -> FastAPI:
    service_metrics = metrics.ServiceMetrics("inventory")
    expired_total = Counter(
        "inventory_reservations_expired_total",
        "Reservations released by the expiry sweeper",
        registry=service_metrics.registry,
    )
    relay_metrics = outbox.RelayMetrics(service_metrics.registry)
    reconciler_metrics = global_view.ReconcilerMetrics(service_metrics.registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        s = cfg or Settings.from_env()
        region = settings.load_region_config(s.common.region_config_file)
        principal.install(app.state)  # the gateway's or a service's signature on every route
        guard = write_guard.WriteGuard(region.region, s.common.fleet_routing_file)
        guard.current()
        pool = await db.create_pool(s.common.database_url)
        redis = aioredis.Redis.from_url(s.common.redis_url)
        loops = checkout_tasks.Supervisor(log)
        relay: outbox.Relay | None = None
        leases = contextlib.AsyncExitStack()
        try:
            # a region that cannot renew its market's lease stops writing it (409 naming the
            # writer); without CHECKOUT_LEASE_NAMESPACE the routing ConfigMap alone decides
            guard.keeper = await leases.enter_async_context(
                fencing.keeper(region, "inventory", in_flight=guard.in_flight)
            )
            await db.migrate(pool, *MIGRATIONS)
            svc = InventoryService(pool, region, guard, expired_total)
            app.state.service = svc
            app.state.idem = idempotency.IdempotencyStore(redis, prefix="inventory:idem:")
            app.state.health_checks = {
                "postgres": lambda: pool.fetchval("SELECT 1"),
                "redis": redis.ping,
            }
            if s.sweep_interval_seconds > 0:
                loops.start(
                    "inventory reservation sweeper",
                    lambda: sweeper(svc, s.sweep_interval_seconds),
                )
            if s.common.kafka_bootstrap and s.common.outbox_relay:
                relay = outbox.Relay.for_region(
                    pool, s.common.kafka_bootstrap, region, metrics=relay_metrics
                )
                loops.start("inventory outbox relay", relay.run)
            if s.common.kafka_bootstrap:
                reconciler = global_view.Reconciler(
                    pool, s.common.kafka_bootstrap, region, reconciler_metrics
                )
                loops.start("inventory global view", reconciler.run)
                if s.checkpoint_interval_seconds > 0:
                    loops.start(
                        "inventory checkpointer",
                        lambda: checkpointer(svc, s.checkpoint_interval_seconds),
                    )
            yield
        finally:
            await loops.aclose()
            if relay is not None:
                await relay.stop()
            await leases.aclose()
            await redis.aclose()
            await pool.close()

    app = common_app.create(
        service="inventory",
        description="Stock reservations as tokens with a TTL; no oversell, no leaked stock.",
        lifespan=lifespan,
        service_metrics=service_metrics,
    )
    app.include_router(router.router)
    return app
