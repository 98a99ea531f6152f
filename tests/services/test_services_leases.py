"""The write leases in the running services: a real inventory process with the lease env writes
a market only while it holds its Lease on the real kube-apiserver, refuses (409 naming the
writer) once the lease is fenced or taken away or cannot be renewed, and without the env keeps
the routing-ConfigMap behaviour and says so once at startup."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import services_harness as h
import yaml
from payments_harness import free_port

from checkout_contract import env as contract_env
from checkout_contract import lease as contract
from checkout_kube import client as kclient
from checkout_kube import config as kconfig
from checkout_kube import errors as kerrors
from checkout_operator.reconcile import leases
from checkout_services.common import lease as keeping
from checkout_services.common import leasestore
from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis
from stack import operator_support as sup

pytestmark = pytest.mark.stack
FLEET = "test"  # services_harness.region_config's fleet
T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None]], within: float, what: str) -> T:
    return await sup.eventually(probe, within, what, every=0.1)


@pytest.fixture
def namespace(kube_namespace: str) -> str:
    return kube_namespace


@pytest.fixture
def client(kube_api: kclient.KubeClient) -> kclient.KubeClient:
    return kube_api


class Cut:
    """A TCP forwarder to the apiserver that a test can cut (the region loses the lease store)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.conns: set[asyncio.StreamWriter] = set()

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        w.close()

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.conns |= {w, uw}
        await asyncio.gather(self._pipe(r, uw), self._pipe(ur, w))

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.conns:
            w.transport.abort()
        await self.server.wait_closed()


def kubeconfig_via(kube: Any, port: int, path: Path) -> Path:
    doc = yaml.safe_load(Path(kube.kubeconfig).read_text())
    for c in doc["clusters"]:
        server = c["cluster"]["server"]
        c["cluster"]["server"] = server.rsplit(":", 1)[0] + f":{port}"
    path.write_text(yaml.safe_dump(doc))
    return path


def apiserver_port(kube: Any) -> int:
    doc = yaml.safe_load(Path(kube.kubeconfig).read_text())
    return int(doc["clusters"][0]["cluster"]["server"].rsplit(":", 1)[1].strip("/"))


def inventory_env(workdir: Path, postgres: Postgres, redis: Redis) -> dict[str, str]:
    env = h.write_configs(workdir)
    routing_file = Path(env["FLEET_ROUTING_FILE"])
    doc = json.loads(routing_file.read_text())
    for m in doc["markets"]:
        m["epoch"] = 1  # the Leases start at epoch 1
    routing_file.write_text(json.dumps(doc))
    return {
        **env,
        "DATABASE_URL": postgres.create_database(f"invl_{uuid.uuid4().hex[:8]}"),
        "REDIS_URL": redis.url.rsplit("/", 1)[0] + "/5",
        "INVENTORY_SWEEP_INTERVAL_SECONDS": "0",
    }


async def reserve(http: httpx.AsyncClient, market: str, sku: str) -> httpx.Response:
    return await http.post(
        "/v1/reservations",
        json={
            "checkout_id": f"co-{uuid.uuid4().hex[:12]}",
            "market": market,
            "lines": [{"sku": sku, "quantity": 1}],
        },
    )


async def test_inventory_writes_only_while_it_holds_the_lease(
    kube: Any,
    namespace: str,
    client: kclient.KubeClient,
    postgres: Postgres,
    redis: Redis,
    tmp_path: Path,
) -> None:
    now = time.time()
    nl = await leases.create(client, namespace, FLEET, "NL", h.REGION, 3, now)
    await leases.create(client, namespace, FLEET, "DE", h.PEER, 3, now)
    await leases.create(client, namespace, FLEET, "FR", h.REGION, 3, now)
    cut = Cut(apiserver_port(kube))
    await cut.start()
    env = {
        **inventory_env(tmp_path, postgres, redis),
        contract_env.LEASE_NAMESPACE: namespace,
        "CHECKOUT_LOG_LEVEL": "INFO",
        contract_env.LEASE_KUBECONFIG: str(
            kubeconfig_via(kube, cut.port, tmp_path / "lease.kubeconfig")
        ),
    }
    # started off the event loop: the cuttable forwarder runs on it
    svc = await asyncio.to_thread(h.ServiceProc("inventory", tmp_path, env).start)
    sku = f"sku-{uuid.uuid4().hex[:8]}"
    try:
        async with httpx.AsyncClient(base_url=svc.url, timeout=10) as http:
            assert (await http.put(f"/v1/stock/{sku}", json={"available": 50})).status_code == 200
            # holds NL: writes; the routing names eu-west-1 for DE but us-east-1 holds its lease
            assert (await reserve(http, "NL", sku)).status_code == 201
            de = h.assert_problem(await reserve(http, "DE", sku), 409)
            assert de["type"].endswith("not-lease-holder")
            assert "its writer is us-east-1 (epoch 1)" in de["detail"]
            assert de["writer"] == h.PEER

            # the renewals reach the store
            renewed = await eventually(
                lambda: _renewed_after(client, namespace, "NL", nl.renewed_at),
                within=10,
                what="a renewal of NL by the inventory process",
            )

            # fenced: the next pass stops writes; inventory leaves the ack to payments
            await leases.fence(client, renewed, h.PEER, "Switchover")

            async def refused() -> dict[str, Any] | None:
                r = await reserve(http, "NL", sku)
                return r.json() if r.status_code == 409 else None

            body = await eventually(refused, within=5, what="NL writes refused after fencing")
            assert "being fenced away from eu-west-1 (to us-east-1)" in body["detail"]
            assert body["writer"] == h.PEER
            fenced = (await leases.read(client, namespace, FLEET))["NL"]
            assert fenced.acked_epoch == 0, "inventory must not acknowledge for the region"

            # taken away: promoted to the peer at epoch 2 (a compare-and-swap, like the
            # operator's: the keeper may record that it stopped between the read and the
            # promotion, and then the promotion reads again)
            for _ in range(5):
                try:
                    await leases.promote(client, fenced, h.PEER, 2, 3, time.time())
                    break
                except kerrors.Conflict:
                    fenced = (await leases.read(client, namespace, FLEET))["NL"]
            else:
                pytest.fail("NL could not be promoted: 5 conflicts in a row")
            assert fenced.acked_epoch == 0, "inventory must not acknowledge for the region"
            r = await reserve(http, "NL", sku)
            assert r.status_code == 409
            assert r.json()["writer"] == h.PEER

            # FR still held; then the region loses the lease store: FR writes stop in time
            assert (await reserve(http, "FR", sku)).status_code == 201
            await cut.cut()
            cut_at = time.monotonic()

            async def fr_refused() -> dict[str, Any] | None:
                r = await reserve(http, "FR", sku)
                return r.json() if r.status_code == 409 else None

            body = await eventually(fr_refused, within=6, what="FR writes refused without renewal")
            stopped = time.monotonic() - cut_at
            assert "could not renew its write lease for market FR" in body["detail"]
            # 3 s lease - 1 s skew after the last renewal start, renewed every 0.75 s
            assert stopped < 3.0, f"still writing FR {stopped:.2f} s after the store went away"
        log = svc.log.read_text()
        assert "write leases of fleet test in namespace " + namespace in log
        assert "(follows fencing)" in log
    finally:
        svc.stop()
        with contextlib.suppress(Exception):
            await cut.cut()


async def _renewed_after(
    client: kclient.KubeClient, namespace: str, market: str, after: float
) -> contract.WriteLease | None:
    lease = (await leases.read(client, namespace, FLEET))[market]
    return lease if lease.renewed_at > after else None


def test_without_lease_env_inventory_says_so_once_and_follows_routing(
    postgres: Postgres, redis: Redis, tmp_path: Path
) -> None:
    svc = h.ServiceProc("inventory", tmp_path, inventory_env(tmp_path, postgres, redis)).start()
    try:
        sku = f"sku-{uuid.uuid4().hex[:8]}"
        with httpx.Client(base_url=svc.url, timeout=10) as http:
            assert http.put(f"/v1/stock/{sku}", json={"available": 5}).status_code == 200
            ok = http.post(
                "/v1/reservations",
                json={
                    "checkout_id": "co-nolease-1",
                    "market": "NL",
                    "lines": [{"sku": sku, "quantity": 1}],
                },
            )
            assert ok.status_code == 201, ok.text
            us = http.post(
                "/v1/reservations",
                json={
                    "checkout_id": "co-nolease-2",
                    "market": "US",
                    "lines": [{"sku": sku, "quantity": 1}],
                },
            )
            assert h.assert_problem(us, 409)["writer"] == h.PEER
    finally:
        svc.stop()
    said = [line for line in svc.log.read_text().splitlines() if "no write leases" in line]
    assert len(said) == 1, said


async def test_the_rendered_role_lets_a_keeper_renew_and_nothing_more(
    kube: Any, namespace: str, client: kclient.KubeClient
) -> None:
    """The Role and RoleBinding the operator renders for a region in the management cluster,
    applied to the real apiserver: the orders ServiceAccount's token renews the fleet's market
    Lease; it may not create Leases nor touch another Lease of the namespace."""
    from checkout_operator.render import leaseaccess

    for component in leaseaccess.COMPONENTS:
        kube.kubectl("create", "serviceaccount", f"checkout-{component}", "-n", namespace)
    for obj in (
        leaseaccess.role(h.REGION, namespace, FLEET, ["NL", "DE"]),
        leaseaccess.role_binding(h.REGION, namespace),
    ):
        kube.kubectl("apply", "-f", "-", input=json.dumps(obj))
    token = kube.kubectl(
        "create", "token", "checkout-orders", "-n", namespace, "--duration=10m"
    ).stdout.strip()
    admin = kconfig.from_kubeconfig_file(kube.kubeconfig)
    creds = kconfig.Credentials(server=admin.server, ca_pem=admin.ca_pem, token=token)
    nl = await leases.create(client, namespace, FLEET, "NL", h.REGION, 5, time.time() - 1)
    other = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "checkout-operator-leader"},
        "spec": {"holderIdentity": "operator-0", "leaseDurationSeconds": 15},
    }
    await client.request(
        "POST",
        f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases",
        body=other,
        target="Lease",
        kind="Lease",
    )
    store = leasestore.LeaseStore.connect(creds, namespace)
    keeper = keeping.LeaseKeeper(h.REGION, FLEET, store)
    try:
        await keeper.step()
        assert keeper.renewals == 1
        assert keeper.errors == 0
        assert keeper.may_write("NL")
        assert (await leases.read(client, namespace, FLEET))["NL"].renewed_at > nl.renewed_at
        # not the other Lease of the namespace (the operator's leader Lease), and no create
        listed = {item.market: item for item in await store.list(FLEET)}
        leader = json.loads(json.dumps(dict(listed["NL"].raw)))
        leader["metadata"]["name"] = "checkout-operator-leader"
        with pytest.raises(kerrors.Forbidden, match="cannot patch resource"):
            await store.replace(leader)
        with pytest.raises(kerrors.Forbidden, match="cannot create resource"):
            await store.client.request(
                "POST",
                f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases",
                body=contract.build(FLEET, namespace, "FR", h.REGION, 1, 5, time.time()),
            )
    finally:
        await store.aclose()
