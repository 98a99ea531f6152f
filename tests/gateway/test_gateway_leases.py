"""The gateway follows the market Leases on a real kube-apiserver, live and without a restart:
writes go to the lease's holder, 503 + Retry-After while the lease is Fencing or expired, and
to the new holder once it is promoted, while the routing file never changes."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import gateway_harness as gh
import httpx
import pytest
import services_harness as h

from checkout_contract import env as contract_env
from checkout_contract import lease as contract
from checkout_kube import client as kclient
from checkout_kube import errors as kerrors
from checkout_operator.reconcile import leases
from checkout_services.common import lease as keeping
from checkout_services.common import leasestore
from checkout_stack.components.redis import Redis

pytestmark = pytest.mark.stack
FLEET = "test"  # gateway_harness.routing_doc's fleet


class Recorder:
    """A plain HTTP upstream (stands in for a service or a peer's gateway) that answers 201 and
    records the requests it got."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[tuple[str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                recorder.seen.append((self.path, dict(self.headers)))
                payload = json.dumps({"servedBy": recorder.name}).encode()
                self.send_response(201)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def namespace(kube_namespace: str) -> str:
    return kube_namespace


@pytest.fixture
def client(kube_api: kclient.KubeClient) -> kclient.KubeClient:
    return kube_api


async def test_writes_follow_the_lease_holder_live(
    kube: Any, namespace: str, client: kclient.KubeClient, redis: Redis, tmp_path: Path
) -> None:
    local, peer = Recorder("local-orders"), Recorder("peer-gateway")
    keys = gh.make_keys(tmp_path)
    routing = tmp_path / "routing.json"
    # the routing file says EU writes DE, Serving, and never changes in this test
    gh.write_atomically(
        routing, gh.routing_doc({gh.EU: "http://eu.invalid", gh.US: peer.url}, {}, {}, 1)
    )
    region_file = tmp_path / "region.json"
    region_file.write_text(json.dumps(h.region_config({"orders": local.url, "cart": local.url})))
    await leases.create(client, namespace, FLEET, "DE", gh.EU, 3, time.time())

    async def cas(change: Callable[[contract.WriteLease], Awaitable[object]]) -> None:
        """What the operator does: read, change by compare-and-swap, again on a conflict (the
        holder renews meanwhile)."""
        for _ in range(20):
            current = (await leases.read(client, namespace, FLEET))["DE"]
            try:
                await change(current)
                return
            except kerrors.Conflict:
                await asyncio.sleep(0.05)
        raise AssertionError("could not change the DE lease in 20 attempts")

    # each region's services renew what they hold (here: a keeper per region, in the test)
    keepers = {
        r: keeping.LeaseKeeper(
            r,
            FLEET,
            leasestore.LeaseStore.from_kubeconfig(kube.kubeconfig, namespace),
            interval=0.3,
        )
        for r in (gh.EU, gh.US)
    }
    for k in keepers.values():
        k.start()
    env = gh.gateway_env(
        keys,
        region_file,
        routing,
        redis.url.rsplit("/", 1)[0] + "/8",
        GATEWAY_LEASE_POLL_SECONDS="0.2",
        **{contract_env.LEASE_NAMESPACE: namespace, contract_env.LEASE_KUBECONFIG: kube.kubeconfig},
    )
    gateway = await asyncio.to_thread(h.ServiceProc("gateway", tmp_path, env).start)
    auth = keys.auth("lease-follower")

    async def write(http: httpx.AsyncClient, n: int) -> httpx.Response:
        return await http.post(
            "/v1/checkouts",
            json=gh.checkout_body(f"co-lease-{n}", "DE"),
            headers={**auth, "Idempotency-Key": f"idem-lease-{n}"},
        )

    async def until(n: int, want: int, within: float = 5.0) -> httpx.Response:
        deadline = time.monotonic() + within
        while True:
            r = await write(http, n)
            if r.status_code == want or time.monotonic() > deadline:
                return r
            await asyncio.sleep(0.1)

    try:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
            r = await write(http, 1)
            assert r.status_code == 201, r.text
            assert r.json() == {"servedBy": "local-orders"}
            assert len(local.seen) == 1

            # the operator fences DE (towards US): 503 + Retry-After, the routing still Serving
            await cas(lambda cur: leases.fence(client, cur, gh.US, "Drain"))
            r = await until(2, 503)
            body = h.assert_problem(r, 503)
            assert body["type"].endswith("/gateway/market-fencing")
            assert int(r.headers["retry-after"]) >= 1
            # writes sent within one poll of the fencing still went local (the region's own
            # guard refuses them): from the first 503 on, none reaches the fenced region
            assert not peer.seen
            reached_local = len(local.seen)

            # promoted to US at epoch 2: writes are forwarded to US's gateway, key kept
            await cas(lambda cur: leases.promote(client, cur, gh.US, 2, 3, time.time()))
            r = await until(3, 201)
            assert r.status_code == 201, r.text
            assert r.json() == {"servedBy": "peer-gateway"}
            path, headers = peer.seen[-1]
            assert path == "/v1/checkouts"
            assert {k.lower(): v for k, v in headers.items()}["idempotency-key"] == "idem-lease-3"
            assert len(local.seen) == reached_local, "a write reached the fenced region"

            # US stops renewing: once its lease expires nobody may write -> 503 again
            await keepers[gh.US].aclose()
            r = await until(4, 503, within=8.0)
            assert h.assert_problem(r, 503)["type"].endswith("/gateway/market-fencing")
        log = gateway.log.read_text()
        assert "writes follow the market Leases of fleet test" in log
    finally:
        for k in keepers.values():
            await k.aclose()
            await k.store.aclose()
        gateway.stop()
        local.close()
        peer.close()


async def test_the_lease_view_follows_a_change_without_polling(
    kube: Any, namespace: str, client: kclient.KubeClient
) -> None:
    """The view lists once and then watches: with a 60 s staleness (a relist every 20 s), a
    fencing written by the operator is in the view within a couple of seconds."""
    from checkout_services.gateway import leases as view_mod

    await leases.create(client, namespace, FLEET, "NL", gh.EU, 30, time.time())
    store = leasestore.LeaseStore.from_kubeconfig(kube.kubeconfig, namespace)
    view = view_mod.StoreLeases(store, FLEET, poll_s=30, stale_after_s=60)
    try:
        await view.start()
        assert view.leases["NL"].holder == gh.EU
        current = (await leases.read(client, namespace, FLEET))["NL"]
        await leases.fence(client, current, gh.US, "Drain")
        deadline = time.monotonic() + 5.0
        while view.leases["NL"].state != "Fencing":
            assert time.monotonic() < deadline, "the view did not see the fencing in 5 s"
            await asyncio.sleep(0.05)
        assert view.errors == 0
    finally:
        await view.aclose()
        await store.aclose()
