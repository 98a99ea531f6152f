"""Payments and the market write leases on a real kube-apiserver: a new authorization needs the
market's lease, an authorization in progress delays the region's fencing acknowledgement, and
a planned move voids the market's authorizations left uncaptured before it acknowledges."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import payments_harness as harness
import pytest
from payments_env import new_env

import made_ids
from checkout_contract import env as contract_env
from checkout_kube import client as kclient
from checkout_operator.reconcile import leases
from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis

pytestmark = pytest.mark.stack
FLEET = "pay"
REGION = "eu-west-1"
PEER = "us-east-1"


@pytest.fixture
def namespace(kube_namespace: str) -> str:
    return kube_namespace


@pytest.fixture
def client(kube_api: kclient.KubeClient) -> kclient.KubeClient:
    return kube_api


def body(checkout_id: str, country: str) -> dict[str, Any]:
    return {
        "checkout_id": checkout_id,
        "amount": 2500,
        "currency": "EUR",
        "country": country,
        "payment_method": "card",
        "payment_method_token": harness.TOKEN,
    }


async def test_in_flight_authorization_delays_the_fencing_ack_and_a_drain_voids_leftovers(
    kube: Any,
    namespace: str,
    client: kclient.KubeClient,
    sim: harness.Sim,
    postgres: Postgres,
    redis: Redis,
    tmp_path: Path,
) -> None:
    sim.reset()
    now = time.time()
    await leases.create(client, namespace, FLEET, "DE", REGION, 3, now)
    await leases.create(client, namespace, FLEET, "NL", PEER, 3, now)
    region_file = tmp_path / "region.json"
    region_file.write_text(
        json.dumps(
            {
                "region": REGION,
                "fleet": FLEET,
                "jurisdiction": "EU",
                "homeMarkets": ["DE", "NL"],
                "endpoints": {},
            }
        )
    )
    env = new_env(
        sim,
        postgres,
        redis,
        tmp_path,
        name="leases",
        redis_db=6,
        timeout_ms=8000,
        extra_env={
            contract_env.LEASE_NAMESPACE: namespace,
            contract_env.LEASE_KUBECONFIG: kube.kubeconfig,
            "REGION_CONFIG_FILE": str(region_file),
            "PAYMENTS_SWITCHOVER_VOID_AFTER_SECONDS": "2",
        },
    )
    try:
        async with httpx.AsyncClient(base_url=env.url, timeout=30) as http:
            left = f"co_left_{made_ids.ref(n=8)}"
            r = await http.post("/v1/payments/authorize", json=body(left, "DE"))
            assert r.status_code == 200, r.text
            assert r.json()["state"] == "authorized"

            # NL's lease is held by the peer: no new authorization here, the writer is named
            r = await http.post(
                "/v1/payments/authorize", json=body(f"co_{made_ids.ref(n=32)}", "NL")
            )
            assert r.status_code == 409, r.text
            problem = r.json()
            assert problem["type"].endswith("not-lease-holder")
            assert problem["writer"] == PEER
            assert f"its writer is {PEER}" in problem["detail"]

            # an authorization in progress (the PSP takes 3 s) when the operator drains DE
            sim.faults(
                {
                    "kind": "latency",
                    "provider": "stripe",
                    "operation": "authorize",
                    "latencyMs": 3000,
                }
            )
            slow_id = f"co_slow_{made_ids.ref(n=8)}"
            slow = asyncio.create_task(
                http.post("/v1/payments/authorize", json=body(slow_id, "DE"))
            )
            await asyncio.sleep(0.5)
            current = (await leases.read(client, namespace, FLEET))["DE"]
            fenced = await leases.fence(client, current, PEER, "Drain")
            fenced_at = time.monotonic()

            refused = None
            acks_while_in_flight = []
            while not slow.done():
                lease = (await leases.read(client, namespace, FLEET))["DE"]
                acks_while_in_flight.append(lease.acked_epoch)
                if refused is None and time.monotonic() - fenced_at > 1.0:
                    refused = await http.post(
                        "/v1/payments/authorize", json=body(f"co_{made_ids.ref(n=32)}", "DE")
                    )
                await asyncio.sleep(0.1)
            done_at = time.monotonic()
            slow_resp = await slow
            sim.faults()
            assert slow_resp.status_code == 200, slow_resp.text
            assert slow_resp.json()["state"] == "authorized"
            assert acks_while_in_flight, "the authorization finished before the fencing"
            assert set(acks_while_in_flight) == {0}, "acknowledged while authorizing"
            assert refused is not None
            assert refused.status_code == 409, refused.text
            assert "being fenced away from eu-west-1 (to us-east-1)" in refused.json()["detail"]

            acked = None
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                lease = (await leases.read(client, namespace, FLEET))["DE"]
                if lease.acked_epoch == fenced.epoch:
                    acked = time.monotonic()
                    break
                await asyncio.sleep(0.1)
            assert acked is not None, "payments never acknowledged the fencing"
            assert acked >= done_at

            # the drain voided the authorization left uncaptured, not the one just made
            assert (await http.get(f"/v1/payments/{left}")).json()["state"] == "voided"
            assert (await http.get(f"/v1/payments/{slow_id}")).json()["state"] == "authorized"
        log = env.payments.log.read_text()
        assert "planned move (epoch 1): 1 authorization(s) left uncaptured voided" in log
    finally:
        sim.faults()
        env.payments.stop()
