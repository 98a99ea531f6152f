"""A three-region fleet on the real control plane for the failover tests: real HTTP health
servers that a test makes fail (503, refused, hang, slow), the services' lease keepers, the
reconcile controller (routing ConfigMaps) and the failover engine, all on loopback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from checkout_contract import routing
from checkout_kube import client as kclient
from checkout_kube import config as kconfig
from checkout_operator.reconcile import controller, desired, failover, index, leases, region
from checkout_services.common import lease as keeping
from checkout_services.common import leasestore
from stack import operator_support as sup

Mode = Literal["ok", "503", "hang", "slow"]
FLEET = "ft"
API = region.API_VERSION


def two_region_routing_file(path: Path, fleet: str, writer: str, epoch: int) -> Path:
    """A rendered fleet routing file (what the write guard reads): regions eu-a and eu-b, market
    NL written by ``writer`` at ``epoch``."""
    path.write_text(
        json.dumps(
            {
                "fleet": fleet,
                "regions": [
                    {"name": r, "jurisdiction": "EU", "gatewayUrl": f"http://{r}"}
                    for r in ("eu-a", "eu-b")
                ],
                "markets": [
                    {
                        "market": "NL",
                        "writer": writer,
                        "epoch": epoch,
                        "readRegions": ["eu-a", "eu-b"],
                        "state": "Serving",
                    }
                ],
            }
        )
    )
    return path


class HealthServer:
    """``GET /health/ready`` on a fixed loopback port; ``mode`` says how it answers."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.mode: Mode = "ok"
        self.hang_seconds = 5.0
        self.slow_seconds = 0.5
        self.hits = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _ready(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.mode == "503":
            return web.json_response({"status": "not ready", "checks": {"db": "down"}}, status=503)
        if self.mode == "hang":
            await asyncio.sleep(self.hang_seconds)
        if self.mode == "slow":
            await asyncio.sleep(self.slow_seconds)
        return web.json_response({"status": "ok"})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health/ready", self._ready)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """Connection refused from now on."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@dataclass
class Region:
    name: str
    jurisdiction: str
    markets: tuple[str, ...]
    targets: tuple[str, ...]
    allowed: tuple[str, ...] = ()
    server: HealthServer = field(default_factory=lambda: HealthServer(sup.free_port()))
    keeper: keeping.LeaseKeeper | None = None


PROBE = {"periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 3, "successThreshold": 2}


def region_body(
    ns: str,
    r: Region,
    child_ns: str,
    failover_spec: dict[str, Any],
    probe: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body = sup.example("eu-west-1")
    spec = body["spec"]
    body["metadata"] = {"name": r.name, "namespace": ns}
    spec.update(
        region=r.name,
        fleet=FLEET,
        jurisdiction=r.jurisdiction,
        gatewayUrl=r.server.url,
        homeMarkets=[
            {"country": m, **({"allowedJurisdictions": list(r.allowed)} if r.allowed else {})}
            for m in r.markets
        ],
        remoteCluster={
            "kubeconfigSecretRef": {"name": "self-kubeconfig", "key": "kubeconfig"},
            "namespace": child_ns,
        },
        replication={},
        healthProbe=probe or PROBE,
        failover={"targets": list(r.targets), **failover_spec},
    )
    for svc in ("cart", "pricing", "inventory", "payments", "orders", "gateway"):
        spec["services"][svc] = {"replicas": 1, "autoscaling": {"enabled": False}}
    return body


@dataclass
class Fleet:
    kube: Any
    ns: str
    regions: dict[str, Region]
    client: kclient.KubeClient
    ctl: controller.Controller
    engine: failover.Engine
    first_bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each region as its first reconcile left it (children applied, none ready yet)."""

    def child_ns(self, name: str) -> str:
        return f"{self.ns}-{name}"

    async def lease_table(self) -> dict[str, tuple[str, int, str]]:
        got = await leases.read(self.client, self.ns, FLEET)
        return {m: (x.holder, x.epoch, x.state) for m, x in got.items()}

    async def body(self, name: str) -> dict[str, Any]:
        return await self.client.get(API, region.REGION_KIND, name, self.ns)

    async def routing(self, name: str) -> routing.FleetRouting | None:
        cm = await self.client.get_or_none(
            "v1", "ConfigMap", routing.CONFIGMAP_NAME, self.child_ns(name)
        )
        if cm is None:
            return None
        return routing.FleetRouting.model_validate_json(cm["data"][routing.CONFIG_KEY])

    async def events(self, name: str) -> list[dict[str, Any]]:
        items = await self.client.list("v1", "Event", self.ns)
        return [e for e in items if e["involvedObject"].get("name") == name]

    async def patch_failover(self, name: str, patch: dict[str, Any]) -> None:
        await self.client.merge_patch(
            API, region.REGION_KIND, name, self.ns, {"spec": {"failover": patch}}
        )

    async def wait_initial_leases(self) -> None:
        want = {m: (r.name, 1, "Serving") for r in self.regions.values() for m in r.markets}
        await sup.eventually(
            lambda: _equal(self.lease_table(), want), within=30, what="leases created"
        )

    def new_engine(self, **kw: Any) -> failover.Engine:
        """Another operator replica's engine: its own client, no shared memory."""
        client = kclient.KubeClient(kconfig.from_kubeconfig_file(self.kube.kubeconfig))

        async def rerender(refs: Any) -> None:
            for ref in refs:
                self.ctl.debouncer.poke(ref)

        return failover.Engine(
            region.Context(client, desired.render), on_routing=rerender, tick=0.2, **kw
        )

    async def kill(self, name: str) -> None:
        """The region is gone: its health endpoint refuses and its services stop renewing."""
        r = self.regions[name]
        await r.server.stop()
        if r.keeper is not None:
            await r.keeper.aclose()
            await r.keeper.store.aclose()


DEFAULT_REGIONS = (
    Region("eu-a", "EU", ("FR", "NL"), ("eu-b",)),
    Region("eu-b", "EU", ("DE",), ("eu-a",)),
    Region("us-a", "US", ("US",), ("eu-b",), allowed=("EU",)),
)


@contextlib.asynccontextmanager
async def running_fleet(
    kube: Any,
    failover_spec: dict[str, Any],
    *,
    keepers: bool = True,
    start_engine: bool = True,
    probe: dict[str, Any] | None = None,
) -> AsyncIterator[Fleet]:
    sup.install_crds(kube)
    ns = sup.unique("fo")
    kube.kubectl("create", "namespace", ns)
    regions = {r.name: copy.deepcopy(r) for r in DEFAULT_REGIONS}
    for r in regions.values():
        r.server = HealthServer(sup.free_port())
        kube.kubectl("create", "namespace", f"{ns}-{r.name}")
    sup.apply_yaml(
        kube,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "self-kubeconfig", "namespace": ns},
            "data": {"kubeconfig": base64.b64encode(kube.kubeconfig.read_bytes()).decode()},
        },
    )
    client = kclient.KubeClient(kconfig.from_kubeconfig_file(kube.kubeconfig))
    ctl = controller.Controller(region.Context(client, desired.render), debounce=0.1)

    async def rerender(refs: Any) -> None:
        for ref in refs:
            ctl.debouncer.poke(ref)

    engine = failover.Engine(ctl.ctx, on_routing=rerender, tick=0.2)
    fleet = Fleet(kube, ns, regions, client, ctl, engine)
    try:
        for r in regions.values():
            await r.server.start()
            body = region_body(ns, r, fleet.child_ns(r.name), failover_spec, probe)
            await client.request("POST", f"/apis/{API}/namespaces/{ns}/checkoutregions", body=body)
        for r in regions.values():
            await ctl.reconcile(index.Ref(ns, r.name))
            fleet.first_bodies[r.name] = await fleet.body(r.name)
            if keepers:
                store = leasestore.LeaseStore.from_kubeconfig(kube.kubeconfig, ns)
                r.keeper = keeping.LeaseKeeper(r.name, FLEET, store, skew=0.5, interval=0.3)
                r.keeper.start()
        if start_engine:
            engine.start([ns])
            await fleet.wait_initial_leases()
        yield fleet
    finally:
        # Let in-flight probes finish before closing (a cancelled request leaves its socket).
        for r in regions.values():
            r.server.mode = "ok"
        await asyncio.sleep(1.5)
        await engine.aclose()
        for r in regions.values():
            if r.keeper is not None:
                await r.keeper.aclose()
                await r.keeper.store.aclose()
            await r.server.stop()
        await ctl.aclose()
        for r in regions.values():
            sup.delete_namespace(kube, f"{ns}-{r.name}")
        sup.delete_namespace(kube, ns)


async def _equal(got: Any, want: Any) -> bool:
    return bool(await got == want)


def new_keeper(kube: Any, ns: str, name: str) -> keeping.LeaseKeeper:
    """A region's lease keeper. The store timeout is generous: on the shared, loaded test
    machine a Lease PUT can take seconds (the keeper then simply holds a shorter validity)."""
    store = leasestore.LeaseStore.from_kubeconfig(kube.kubeconfig, ns, timeout=4.0)
    return keeping.LeaseKeeper(name, FLEET, store, skew=0.5, interval=0.3)


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)[:3000]
