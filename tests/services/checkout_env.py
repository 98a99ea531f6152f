"""A whole region's checkout: PSP simulator, payments, pricing, inventory and orders as real
processes on loopback, with real PostgreSQL, Redis, Kafka and Temporal."""

from __future__ import annotations

import json
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import payments_harness as ph
import pytest
import services_harness as h

from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis
from checkout_stack.components.temporal import Temporal
from checkout_stack.pytest_plugin import KafkaClusters

SKUS = ("tee", "mug")
KEY = secrets.token_hex(32)
"""The region's ``CHECKOUT_GATEWAY_KEY`` when :func:`start` runs it ``signed``."""
SIGNED = {"CHECKOUT_GATEWAY_KEY": KEY, "CHECKOUT_GATEWAY_AUTH": "on"}


@dataclass
class CheckoutEnv:
    workdir: Path
    sim: ph.Sim
    payments: ph.PaymentsProc
    pricing: h.ServiceProc
    inventory: h.ServiceProc
    orders: h.ServiceProc
    orders_env: dict[str, str]
    kafka_bootstrap: str
    extra: list[h.ServiceProc] = field(default_factory=list)

    def stop(self) -> None:
        for svc in (self.orders, *self.extra, self.inventory, self.pricing):
            svc.stop()
        self.payments.stop()
        self.sim.stop()


def start(
    workdir: Path,
    postgres: Postgres,
    redis: Redis,
    temporal: Temporal,
    kafka_bootstrap: str,
    *,
    psp_latency_ms: int = 0,
    redis_db: int = 4,
    orders_relay: bool = True,
    webhooks: bool = False,
    signed: bool = False,
    orders_extra: dict[str, str] | None = None,
    card_eu_providers: tuple[str, ...] = ("stripe-eu", "adyen-eu"),
) -> CheckoutEnv:
    """``card_eu_providers``: who takes EU card payments, in order (e.g. only ``adyen-eu``).
    ``webhooks``: the providers' webhooks (Stripe, Adyen) reach this payments service.
    ``signed``: every service holds the region's key (:data:`KEY`) and refuses unsigned
    requests, as deployed; the orders saga signs its calls (without it every check is off)."""
    # unsigned: the check off everywhere, the DLQ tool (run with ``orders_env``) included
    keyed = SIGNED if signed else {"CHECKOUT_GATEWAY_AUTH": "off"}
    tag = uuid.uuid4().hex[:8]
    redis_url = redis.url.rsplit("/", 1)[0] + f"/{redis_db}"
    sim = ph.start_sim(workdir)
    sim.reset()
    if psp_latency_ms:
        sim.faults({"kind": "latency", "latencyMs": psp_latency_ms})
    creds = ph.make_credentials(workdir / "creds")
    pay_port = ph.free_port()
    hooks = {
        name: f"http://127.0.0.1:{pay_port}/v1/webhooks/{name}"
        for name in ("stripe-eu", "stripe-us", "adyen-eu", "adyen-us")
    }
    ph.register_accounts(sim, creds, hooks if webhooks else {})
    ports = {name: h.free_port() for name in ("pricing", "inventory", "orders")}
    endpoints = {name: f"http://127.0.0.1:{p}" for name, p in ports.items()}
    endpoints["payments"] = f"http://127.0.0.1:{pay_port}"
    region = h.region_config(endpoints)
    region["temporalNamespace"] = temporal.namespace
    region["temporalTaskQueue"] = f"checkout-{tag}"
    (workdir / "region.json").write_text(json.dumps(region))
    payments = ph.payments_proc(
        workdir,
        name=f"co{tag}",
        database_url=postgres.create_database(f"copay_{tag}"),
        redis_url=redis_url,
        routing=ph.routing_config(sim, creds, card_eu_providers=card_eu_providers),
        port=pay_port,
        # a payment leaving requires_action signals the checkout's saga (as deployed)
        extra_env={
            **keyed,
            "TEMPORAL_ADDRESS": temporal.address,
            "REGION_CONFIG_FILE": str(workdir / "region.json"),
        },
    ).start()
    (workdir / "routing.json").write_text(json.dumps(h.fleet_routing()))
    (workdir / "pricing.json").write_text(json.dumps(h.pricing_config()))
    base = {
        "REGION_CONFIG_FILE": str(workdir / "region.json"),
        "FLEET_ROUTING_FILE": str(workdir / "routing.json"),
        "REDIS_URL": redis_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        **keyed,
    }
    pricing = h.ServiceProc(
        "pricing",
        workdir,
        {**base, "PRICING_CONFIG_FILE": str(workdir / "pricing.json")},
        port=ports["pricing"],
    ).start()
    inventory = h.ServiceProc(
        "inventory",
        workdir,
        {**base, "DATABASE_URL": postgres.create_database(f"coinv_{tag}")},
        port=ports["inventory"],
    ).start()
    orders_env = {
        **base,
        "DATABASE_URL": postgres.create_database(f"coord_{tag}"),
        "TEMPORAL_ADDRESS": temporal.address,
        "OUTBOX_RELAY": "1" if orders_relay else "0",
        **(orders_extra or {}),
    }
    orders = h.ServiceProc("orders", workdir, orders_env, port=ports["orders"]).start()
    return CheckoutEnv(
        workdir, sim, payments, pricing, inventory, orders, orders_env, kafka_bootstrap
    )


def start_logged(
    workdir: Path,
    postgres: Postgres,
    redis: Redis,
    temporal: Temporal,
    kafka_bootstrap: str,
    **kw: Any,
) -> CheckoutEnv:
    """:func:`start` with every service logging at INFO (access logs on): for the tests that
    search the logs for what must not be there."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHECKOUT_LOG_LEVEL", "INFO")
        mp.setenv("PAYMENTS_LOG_LEVEL", "INFO")
        return start(workdir, postgres, redis, temporal, kafka_bootstrap, **kw)


def running(
    postgres: Postgres,
    redis: Redis,
    temporal: Temporal,
    kafka_clusters: KafkaClusters,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    **kw: Any,
) -> Iterator[CheckoutEnv]:
    """A module fixture's body: :func:`start` a region (``kw`` as for it), yield it, stop it."""
    env = start(
        tmp_path_factory.mktemp(name),
        postgres,
        redis,
        temporal,
        kafka_clusters.get(h.REGION).bootstrap,
        **kw,
    )
    try:
        yield env
    finally:
        env.stop()


def dlq_cli(env: CheckoutEnv, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """``checkout-services dlq ARGS`` as run in an orders pod (its env, ``extra`` on top)."""
    return subprocess.run(
        [str(h.BIN), "dlq", *args, "--bootstrap", env.kafka_bootstrap],
        env={**env.orders_env, "PATH": "/usr/bin:/bin", **extra},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
