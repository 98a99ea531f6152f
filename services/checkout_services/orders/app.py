"""The orders app: lifespan (pool, migrations, Redis, one httpx client, Temporal client and
worker, outbox relay, DLQ depth gauge)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis
from fastapi import FastAPI
from prometheus_client import Counter, Gauge
from temporalio.client import Client
from temporalio.worker import Worker

import checkout_tasks
from checkout_contract import env
from checkout_services.common import app as common_app
from checkout_services.common import (
    db,
    fencing,
    idempotency,
    metrics,
    outbox,
    principal,
    settings,
    tracing,
    write_guard,
)
from checkout_services.common import http as common_http
from checkout_services.orders import privacy, router
from checkout_services.orders.activities import Activities
from checkout_services.orders.service import OrdersService
from checkout_services.orders.workflow import (
    ACTION_TIMEOUT_S,
    CAPTURE_POLL_S,
    CAPTURE_TIMEOUT_S,
    CheckoutSagaWorkflow,
    CheckoutWorkflow,
)

log = logging.getLogger("checkout_services.orders")
MIGRATIONS = (db.COMMON_MIGRATIONS, "checkout_services.orders.migrations")


@dataclass(frozen=True)
class Settings:
    common: settings.CommonSettings
    temporal_address: str
    run_worker: bool = True
    action_timeout_s: float = ACTION_TIMEOUT_S
    capture_timeout_s: float = CAPTURE_TIMEOUT_S
    capture_poll_s: float = CAPTURE_POLL_S

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            common=settings.CommonSettings.from_env(database=True, redis=True),
            temporal_address=settings.env_str(env.TEMPORAL_ADDRESS),
            run_worker=settings.env_str("ORDERS_WORKER", "1") not in ("0", "false", "no"),
            action_timeout_s=seconds("ORDERS_SHOPPER_ACTION_TIMEOUT_SECONDS", ACTION_TIMEOUT_S),
            capture_timeout_s=seconds("ORDERS_CAPTURE_OUTCOME_TIMEOUT_SECONDS", CAPTURE_TIMEOUT_S),
            capture_poll_s=seconds("ORDERS_CAPTURE_OUTCOME_POLL_SECONDS", CAPTURE_POLL_S),
        )


def seconds(name: str, default: float) -> float:
    """A duration in seconds from the environment (> 0)."""
    raw = settings.env_str(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise settings.SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise settings.SettingsError(f"{name} must be > 0")
    return value


async def watch_dlq(pool: object, gauge: Gauge) -> None:
    while True:
        with contextlib.suppress(Exception):
            n = await pool.fetchval(  # type: ignore[attr-defined]
                "SELECT count(*) FROM orders WHERE state = 'capture_failed'"
            )
            gauge.set(n)
        await asyncio.sleep(5)


def create_app(cfg: Settings | None = None) -> FastAPI:
    service_metrics = metrics.ServiceMetrics("orders")
    outcomes = Counter(
        "checkout_saga_outcomes_total",
        "Finished checkout sagas by outcome (completed, capture_failed, or the failure reason)",
        ["outcome"],
        registry=service_metrics.registry,
    )
    dlq_depth = Gauge(
        "checkout_dlq_depth",
        "Checkouts whose capture failed and that were not replayed yet",
        registry=service_metrics.registry,
    )
    relay_metrics = outbox.RelayMetrics(service_metrics.registry)
    answers = Counter(
        "checkout_answers_total",
        "Checkout answers by how the API learnt them: 'local' (its own worker's activity, "
        "eager start) or 'workflow' (the 'placed' update or the workflow's result)",
        ["via"],
        registry=service_metrics.registry,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        s = cfg or Settings.from_env()
        region = settings.load_region_config(s.common.region_config_file)
        principal.install(app.state)  # clients' routes: through the gateway only
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
                fencing.keeper(region, "orders", in_flight=guard.in_flight)
            )
            await db.migrate(pool, *MIGRATIONS)
            temporal = await Client.connect(
                s.temporal_address,
                namespace=region.temporal_namespace,
                interceptors=tracing.temporal_interceptors(),
            )
            async with (
                common_http.client(max_connections=200, max_keepalive=100, timeout=10.0) as http,
                contextlib.AsyncExitStack() as stack,
            ):
                acts = Activities(http, pool, region, outcomes, internal_key=app.state.gateway_key)
                if s.run_worker:
                    worker = Worker(
                        temporal,
                        task_queue=region.temporal_task_queue,
                        # CheckoutWorkflow: the earlier shape, for workflows started before
                        workflows=[CheckoutSagaWorkflow, CheckoutWorkflow],
                        activities=acts.all(),
                        max_concurrent_activities=200,
                    )
                    await stack.enter_async_context(worker)
                app.state.service = OrdersService(
                    pool,
                    temporal,
                    region,
                    guard,
                    acts,
                    answers,
                    s.action_timeout_s,
                    capture_timeout_s=s.capture_timeout_s,
                    capture_poll_s=s.capture_poll_s,
                )
                app.state.idem = idempotency.IdempotencyStore(redis, prefix="orders:idem:")
                app.state.health_checks = {
                    "postgres": lambda: pool.fetchval("SELECT 1"),
                    "redis": redis.ping,
                    "temporal": lambda: temporal.service_client.check_health(),
                }
                loops.start("orders DLQ depth", lambda: watch_dlq(pool, dlq_depth))
                if s.common.kafka_bootstrap and s.common.outbox_relay:
                    relay = outbox.Relay.for_region(
                        pool, s.common.kafka_bootstrap, region, metrics=relay_metrics
                    )
                    loops.start("orders outbox relay", relay.run)
                if s.common.kafka_bootstrap:
                    # copies of peers' customers (where residency allows) and their erasures
                    applier = privacy.ReplicaApplier(pool, s.common.kafka_bootstrap, region.region)
                    loops.start("orders replica applier", applier.run)
                yield
        finally:
            await loops.aclose()
            if relay is not None:
                await relay.stop()
            await leases.aclose()
            await redis.aclose()
            await pool.close()

    app = common_app.create(
        service="orders",
        description="Checkouts as Temporal sagas (price, reserve, authorize, place, capture, "
        "fulfil) with compensations; events through a transactional outbox.",
        lifespan=lifespan,
        service_metrics=service_metrics,
    )
    app.include_router(router.router)
    return app
