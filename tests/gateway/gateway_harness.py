"""Test harness for the gateway: signing keys and a JWKS, tokens, and whole regions (domain
services + gateway as real processes) that share one PSP simulator and one routing file."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import payments_harness as ph
import services_harness as h
from cryptography.hazmat.primitives.asymmetric import rsa

from checkout_services.common import principal
from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis
from checkout_stack.components.temporal import Temporal, temporal_bin

EU = h.REGION
US = h.PEER
ISSUER = "https://auth.checkout.test"
AUDIENCE = "checkout-gateway"
INTERNAL_KEY = "k" + uuid.uuid4().hex + uuid.uuid4().hex
"""The key the gateways sign principals with and the services check (common/principal.py)."""
SIGNED = {"CHECKOUT_GATEWAY_KEY": INTERNAL_KEY, "CHECKOUT_GATEWAY_AUTH": "on"}


@dataclass
class Keys:
    private: rsa.RSAPrivateKey
    kid: str
    jwks_file: Path

    def token(self, sub: str = "shopper-1", *, ttl_s: int = 600, **claims: Any) -> str:
        now = int(time.time())
        payload = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + ttl_s}
        payload.update(claims)
        return jwt.encode(payload, self.private, algorithm="RS256", headers={"kid": self.kid})

    def auth(self, sub: str = "shopper-1", **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, **claims)}"}


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
    return jwk


def make_keys(workdir: Path) -> Keys:
    key = rsa_key()
    kid = "k-" + uuid.uuid4().hex[:8]
    path = workdir / "jwks.json"
    path.write_text(json.dumps({"keys": [public_jwk(key, kid)]}))
    return Keys(key, kid, path)


def gateway_env(
    keys: Keys, region_file: Path, routing_file: Path, redis_url: str, **extra: str
) -> dict[str, str]:
    return {
        "REGION_CONFIG_FILE": str(region_file),
        "FLEET_ROUTING_FILE": str(routing_file),
        "REDIS_URL": redis_url,
        "GATEWAY_JWKS": str(keys.jwks_file),
        "GATEWAY_JWT_ISSUER": ISSUER,
        "GATEWAY_JWT_AUDIENCE": AUDIENCE,
        "GATEWAY_ROUTING_POLL_SECONDS": "0.2",
        "CHECKOUT_LOG_LEVEL": "INFO",
        "GATEWAY_INSECURE_LOOPBACK": "1",  # the peers are http://127.0.0.1:<port>
        # every test client is 127.0.0.1: failed authentications are limited per address
        "GATEWAY_AUTH_FAILURE_BURST": "100000",
        **SIGNED,
        **extra,
    }


def edge_procs(
    workdir: Path,
    keys: Keys,
    redis_url: str,
    routing: Path,
    cart_env: dict[str, str] | None = None,
    **gateway_extra: str,
) -> tuple[h.ServiceProc, h.ServiceProc]:
    """A cart service (started) and a gateway in front of it (not started yet)."""
    cart_region = workdir / "cart-region.json"
    cart = h.ServiceProc(
        "cart",
        workdir,
        {
            "REGION_CONFIG_FILE": str(cart_region),
            "FLEET_ROUTING_FILE": str(routing),
            "REDIS_URL": redis_url,
            **(cart_env or {}),
        },
    )
    region = h.region_config({"cart": cart.url})
    cart_region.write_text(json.dumps(region))
    region_file = workdir / "region.json"
    region_file.write_text(json.dumps(region))
    cart.start()
    env = gateway_env(keys, region_file, routing, redis_url, **gateway_extra)
    return cart, h.ServiceProc("gateway", workdir, env)


def routing_doc(
    gateways: dict[str, str], writers: dict[str, str], states: dict[str, str], epoch: int
) -> dict[str, Any]:
    """DE written by ``writers['DE']`` (default EU), US by ``writers['US']`` (default US)."""
    return {
        "fleet": "test",
        "regions": [
            {"name": EU, "jurisdiction": "EU", "gatewayUrl": gateways[EU]},
            {"name": US, "jurisdiction": "US", "gatewayUrl": gateways[US]},
        ],
        "markets": [
            {
                "market": market,
                "writer": writers.get(market, home),
                "epoch": epoch,
                "readRegions": [EU, US],
                "state": states.get(market, "Serving"),
            }
            for market, home in (("DE", EU), ("US", US))
        ],
    }


def write_atomically(path: Path, doc: dict[str, Any]) -> None:
    """Like the kubelet's ConfigMap update: a new file swapped in by rename."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


def metric(url: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 when absent)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        series = head[len(name) :]
        if series and not series.startswith("{"):
            continue
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


def create_namespace(temporal: Temporal, namespace: str) -> None:
    done = subprocess.run(
        [
            str(temporal_bin()),
            "operator",
            "namespace",
            "create",
            "--address",
            temporal.address,
            "--namespace",
            namespace,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if done.returncode != 0 and "already" not in (done.stderr + done.stdout).lower():
        raise RuntimeError(f"cannot create Temporal namespace {namespace}: {done.stderr}")


@dataclass
class RegionProcs:
    name: str
    workdir: Path
    payments: ph.PaymentsProc
    pricing: h.ServiceProc
    inventory: h.ServiceProc
    orders: h.ServiceProc
    cart: h.ServiceProc
    gateway: h.ServiceProc
    inventory_db: str
    extra: list[h.ServiceProc] = field(default_factory=list)

    def stop(self) -> None:
        for svc in (self.gateway, self.orders, self.inventory, self.pricing, self.cart):
            svc.stop()
        self.payments.stop()


def start_region(
    name: str,
    workdir: Path,
    *,
    sim: ph.Sim,
    creds: ph.Credentials,
    postgres: Postgres,
    redis: Redis,
    redis_db: int,
    temporal: Temporal,
    temporal_namespace: str,
    keys: Keys,
    routing_file: Path,
    gateway_port: int,
    gateway_extra: dict[str, str] | None = None,
) -> RegionProcs:
    """One region's payments, pricing, inventory, orders, cart and gateway (no Kafka: the outbox
    relays are off, events stay in the outboxes)."""
    workdir.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    redis_url = redis.url.rsplit("/", 1)[0] + f"/{redis_db}"
    ports = {svc: h.free_port() for svc in ("pricing", "inventory", "orders", "cart", "payments")}
    endpoints = {svc: f"http://127.0.0.1:{p}" for svc, p in ports.items()}
    region = h.region_config(endpoints)
    region["region"] = name
    region["jurisdiction"] = "EU" if name == EU else "US"
    region["homeMarkets"] = ["DE"] if name == EU else ["US"]
    region["temporalNamespace"] = temporal_namespace
    region["temporalTaskQueue"] = f"checkout-{name}-{tag}"
    region_file = workdir / "region.json"
    region_file.write_text(json.dumps(region))
    payments = ph.payments_proc(
        workdir,
        name=f"gw{tag}",
        database_url=postgres.create_database(f"gwpay_{tag}"),
        redis_url=redis_url,
        routing=ph.routing_config(sim, creds, region=name),
        port=ports["payments"],
        # the end of a shopper action signals the region's checkout saga, as deployed
        extra_env={
            **SIGNED,  # as deployed: only the saga's signed calls pass
            "TEMPORAL_ADDRESS": temporal.address,
            "REGION_CONFIG_FILE": str(region_file),
        },
    ).start()
    (workdir / "pricing.json").write_text(json.dumps(h.pricing_config()))
    base = {
        "REGION_CONFIG_FILE": str(region_file),
        "FLEET_ROUTING_FILE": str(routing_file),
        "REDIS_URL": redis_url,
        "OUTBOX_RELAY": "0",
        "CHECKOUT_LOG_LEVEL": "INFO",
        **SIGNED,
    }
    pricing = h.ServiceProc(
        "pricing",
        workdir,
        {**base, "PRICING_CONFIG_FILE": str(workdir / "pricing.json")},
        port=ports["pricing"],
    ).start()
    inventory_db = postgres.create_database(f"gwinv_{tag}")
    inventory = h.ServiceProc(
        "inventory", workdir, {**base, "DATABASE_URL": inventory_db}, port=ports["inventory"]
    ).start()
    orders = h.ServiceProc(
        "orders",
        workdir,
        {
            **base,
            "DATABASE_URL": postgres.create_database(f"gword_{tag}"),
            "TEMPORAL_ADDRESS": temporal.address,
        },
        port=ports["orders"],
    ).start()
    cart = h.ServiceProc("cart", workdir, base, port=ports["cart"]).start()
    gateway = h.ServiceProc(
        "gateway",
        workdir,
        gateway_env(keys, region_file, routing_file, redis_url, **(gateway_extra or {})),
        port=gateway_port,
    ).start()
    return RegionProcs(
        name, workdir, payments, pricing, inventory, orders, cart, gateway, inventory_db
    )


def checkout_body(checkout_id: str, market: str, sku: str = "tee", qty: int = 1) -> dict[str, Any]:
    currency = {"DE": "EUR", "US": "USD"}[market]
    return {
        "checkout_id": checkout_id,
        "market": market,
        "currency": currency,
        "lines": [{"sku": sku, "quantity": qty}],
        "payment_method": "card",
        "payment_method_token": ph.TOKEN,
    }


CHECKOUTS = "checkout_http_request_seconds_count"


@dataclass
class Fleet:
    sim: ph.Sim
    keys: Keys
    routing: Path
    gateways: dict[str, str]
    regions: dict[str, RegionProcs]
    creds: ph.Credentials | None = None

    def route(self, writers: dict[str, str], states: dict[str, str], epoch: int) -> None:
        write_atomically(self.routing, routing_doc(self.gateways, writers, states, epoch))

    def stock(self, sku: str, available: int) -> None:
        path, body = f"/v1/stock/{sku}", json.dumps({"available": available}).encode()
        # stock administration is a service's call: signed like the orders saga's
        headers = principal.signed_headers(
            INTERNAL_KEY.encode(), "PUT", path, principal.internal("test"), body
        )
        for region in self.regions.values():
            r = httpx.put(
                f"{region.inventory.url}{path}",
                content=body,
                headers={**headers, "Content-Type": "application/json"},
                timeout=30,
            )
            assert r.status_code == 200, r.text

    def checkouts_seen(self, region: str) -> float:
        """POST /v1/checkouts requests that reached ``region``'s orders service."""
        return metric(
            self.regions[region].orders.url, CHECKOUTS, route="/v1/checkouts", method="POST"
        )

    def charges(self, checkout_id: str) -> list[dict[str, object]]:
        return self.sim.payments(checkout_id)


def webhook_edge(workdir: Path, redis_url: str, payments: dict[str, str]) -> list[h.ServiceProc]:
    """EU's and US's gateways (started), each in front of only its region's payments service
    (``payments``: region -> URL), one routing file naming both: for tests whose providers'
    webhooks come in through one region's edge, as deployed (no other service behind them)."""
    workdir.mkdir(parents=True, exist_ok=True)
    keys = make_keys(workdir)
    ports = {EU: h.free_port(), US: h.free_port()}
    routing = workdir / "edge-routing.json"
    write_atomically(
        routing, routing_doc({n: f"http://127.0.0.1:{p}" for n, p in ports.items()}, {}, {}, 1)
    )
    started: list[h.ServiceProc] = []
    try:
        for name, market in ((EU, "DE"), (US, "US")):
            region = h.region_config({"payments": payments[name]})
            region.update(region=name, jurisdiction=market if market == "US" else "EU")
            region["homeMarkets"] = [market]
            region_file = workdir / f"edge-{name}.json"
            region_file.write_text(json.dumps(region))
            # every delivery of a provider is one client: its bucket must take a chaos run
            limits = {"GATEWAY_CLIENT_RATE": "100000", "GATEWAY_CLIENT_BURST": "100000"}
            env = gateway_env(keys, region_file, routing, redis_url, **limits)
            started.append(h.ServiceProc("gateway", workdir, env, port=ports[name]).start())
    except BaseException:
        for proc in started:
            proc.stop()
        raise
    return started
