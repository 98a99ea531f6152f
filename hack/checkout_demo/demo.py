"""The demo run: bring everything up, drive load, run a GameDay scenario, check, report."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import checkout_tasks
from checkout_demo import auth, cluster, cpu, report, report_files, scenarios, stopping, verify
from checkout_demo.infra import BACKGROUND_NICE, Edge, PspSim, RegionInfra, start_parallel
from checkout_demo.kubelet import Kubelet
from checkout_demo.load import LIMITED_SKU, LoadGen, Router
from checkout_demo.view import WriterEvent
from checkout_services.common import principal
from checkout_stack.components.kube import ControlPlane
from checkout_stack.errors import StackError

ROUTING_CONFIGMAP = "checkout-fleet-routing"
STOCK = {"tee": 1_000_000, "mug": 1_000_000, LIMITED_SKU: 40}


@dataclass
class Options:
    scenario: str = "kill-region"
    region: str = "us-east-1"
    rate: float = 3.0
    warmup: float = 20.0
    before: float = 60.0
    during: float = 60.0
    after: float = 30.0
    failover_timeout: float = 45.0
    out: Path = Path("demo-report")
    keep: bool = False
    workdir: Path | None = None
    """The work folder (logs, data); None: a new temporary one."""


class Demo:
    def __init__(self, opts: Options, say: Callable[[str], None] = print) -> None:
        self.opts = opts
        self.say = say
        self.workdir = opts.workdir or cluster.new_workdir()
        self.failed = False
        """An error ended the run: the work folder is kept for its logs."""
        self.fleet = cluster.load_fleet()
        self.names = self.fleet.names
        self.stoppables: list[Any] = []
        self.plane: ControlPlane | None = None
        self.api: cluster.Api | None = None
        self.infra: dict[str, RegionInfra] = {}
        self.kubelets: dict[str, Kubelet] = {}
        self.edges: dict[str, Edge] = {}
        self.sim: PspSim | None = None
        self.issuer = auth.Issuer()
        self.gateway_keys: dict[str, bytes] = {}
        """Namespace -> the key its services check signatures with (stock seeding signs)."""
        self.notes: list[str] = []
        self.writers: dict[str, str] = {}
        self.epochs: dict[str, int] = {}
        self.states: dict[str, str] = {}
        self.messages: dict[str, str] = {}
        self.region_status: dict[str, dict[str, Any]] = {}
        self.routing_seen: dict[tuple[str, str], tuple[str, int, str]] = {}
        self.routing_events: list[dict[str, Any]] = []
        self.writer_source = "routing ConfigMap"
        self.writer_events: list[WriterEvent] = []
        self.down: set[str] = set()
        self.t0 = time.monotonic()
        self.timings: dict[str, float] = {}
        self._watch_stop = threading.Event()
        self._watch: threading.Thread | None = None
        self.load: LoadGen | None = None
        self.phase = "starting"
        self.marks: dict[str, float] = {}
        self.cpu: dict[str, dict[str, float]] = {}
        self.warmup_summary: dict[str, Any] = {}
        self.applied_fleet: cluster.Fleet | None = None
        self.lease_kubeconfig: Path | None = None

    def now(self) -> float:
        return time.monotonic() - self.t0

    # -- bring-up -----------------------------------------------------------------------------

    def up(self) -> None:
        w = self.workdir
        self.say(f"demo: work folder {w}")
        self.say(
            "demo: the management control plane is a real kube-apiserver + etcd + "
            "kube-controller-manager; kwok stands in for kubelets, so NO CONTAINER RUNS: the demo "
            "plays the kubelet and runs each region's services as local processes, configured "
            "from the ConfigMaps and Secrets of the Deployments the operator created."
        )
        began = time.monotonic()
        # the management cluster: off the checkout path, so behind it for the CPU
        self.plane = ControlPlane("management", w / "kube", nice=BACKGROUND_NICE)
        self.stoppables.append(self.plane)
        self.sim = PspSim(w / "psp-sim")
        self.stoppables.append(self.sim)
        starters: dict[str, Callable[[], object]] = {
            "kube": self.plane.start,
            "psp-sim": self.sim.start,
        }
        for name in self.names:
            infra = RegionInfra(name, w / "regions" / name)
            self.infra[name] = infra
            self.stoppables.append(infra)
            starters.update(infra.starters())
        self.say(
            f"demo: starting the control plane, the PSP simulator and, per region "
            f"({', '.join(self.names)}), PostgreSQL, Redis, Kafka (KRaft) and Temporal"
        )
        seconds = start_parallel(starters, workers=4)
        self.timings["infra"] = time.monotonic() - began
        self.say(
            "demo: up in "
            + ", ".join(
                f"{k} {v:.0f} s" for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])[:5]
            )
        )
        self.api = cluster.Api(self.plane)
        for name in self.names:
            edge = Edge(name)
            edge.set_mode("forward")
            self.edges[name] = edge
            self.stoppables.append(edge)

        t = time.monotonic()
        namespaces = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
            for ns in self.namespaces()
        ]
        cluster.apply(self.plane, namespaces)
        self.say(
            "demo: helm install charts/checkout-operator (CRDs, RBAC, the operator's Deployment)"
        )
        cluster.helm_install(self.plane, w / "helm.log")
        sa = cluster.service_account_kubeconfig(self.plane, w / "operator.kubeconfig")
        self.say("demo: the operator runs as a local process under the chart's ServiceAccount")
        op = cluster.start_operator(sa, w / "operator.log")
        self.stoppables.append(op)
        self.apply_fleet()
        self.say("demo: waiting for every CheckoutRegion to be Ready")
        cluster.wait_ready(self.api, self.names, w / "operator.log")
        self.timings["operator"] = time.monotonic() - t

        t = time.monotonic()
        self.start_regions()
        self.timings["services"] = time.monotonic() - t
        self.wait_serving()
        self.arm_failover()
        self.read_writers()
        self._watch = threading.Thread(target=self._watch_loop, daemon=True)
        self._watch.start()

    def apply_fleet(self) -> None:
        assert self.plane is not None
        assert self.sim is not None
        fleet = cluster.with_local_addresses(
            self.fleet, {n: e.url for n, e in self.edges.items()}, self.sim.url
        )
        docs: list[dict[str, Any]] = []
        namespaces = self.namespaces()
        # the services' lease credential: a least-privilege token, not the admin kubeconfig
        self.lease_kubeconfig = cluster.lease_keeper_kubeconfig(
            self.plane, self.workdir / "lease-keeper.kubeconfig"
        )
        docs.append(
            cluster.secret_doc(
                cluster.NAMESPACE,
                cluster.KUBECONFIG_SECRET,
                {"kubeconfig": self.plane.kubeconfig.read_text()},
            )
        )
        creds = self.psp_credentials()
        for ns in namespaces:
            # the key each region's gateway signs principals with (spec.edge.gateway default)
            key = {"key": secrets.token_hex(32)}
            self.gateway_keys[ns] = key["key"].encode()
            docs.append(cluster.secret_doc(ns, "checkout-gateway-key", key))
            for infra in self.infra.values():
                for name, data in infra.secrets().items():
                    docs.append(cluster.secret_doc(ns, name, data))
            for provider, data in creds.items():
                docs.append(cluster.secret_doc(ns, f"psp-{provider}", data))
        for ns in namespaces[1:]:
            # the seam for the services' write leases of a remote region (regions as namespaces)
            docs.append(
                cluster.secret_doc(
                    ns,
                    cluster.LEASE_KUBECONFIG_SECRET,
                    {"kubeconfig": self.lease_kubeconfig.read_text()},
                )
            )
            # the regions' gateways verify the load's bearer tokens with this JWKS
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": auth.JWKS_CONFIGMAP, "namespace": ns},
                    "data": {auth.JWKS_KEY: self.issuer.jwks()},
                }
            )
        cluster.apply(self.plane, docs)
        self.say(
            f"demo: applying hack/checkout_demo/fleet/ ({len(fleet.regions)} CheckoutRegions, "
            f"{len(fleet.routes)} PSPRoutes; gatewayUrl = each region's local edge, PSP "
            "endpoints = the local simulator)"
        )
        # automatic failover is armed once every region runs (arm_failover): before that the
        # regions' health probes fail only because their services are not started yet (the
        # demo starts them from what the operator renders), and a market must not move for that
        self.applied_fleet = fleet
        held = copy.deepcopy(fleet.regions)
        for r in held:
            if (r["spec"].get("failover") or {}).get("policy", "Automatic") == "Automatic":
                r["spec"].setdefault("failover", {})["policy"] = "Manual"
        cluster.apply(self.plane, [*held, *fleet.routes])

    def arm_failover(self) -> None:
        """Apply the fleet's own failover policies (Automatic) now that every region serves
        its home markets, and wait for the operator to observe them."""
        assert self.plane is not None
        assert self.api is not None
        assert self.applied_fleet is not None
        cluster.apply(self.plane, self.applied_fleet.regions)
        cluster.wait_ready(self.api, self.names, self.workdir / "operator.log")
        self.say("demo: automatic failover armed (the fleet's own spec.failover.policy)")

    def namespaces(self) -> list[str]:
        return [cluster.NAMESPACE, *(cluster.region_namespace(n) for n in self.names)]

    def psp_credentials(self) -> dict[str, dict[str, str]]:
        """Test keys per provider account, registered with the simulator (the PSP's side)."""
        assert self.sim is not None
        out: dict[str, dict[str, str]] = {}
        accounts = []
        for p in self.fleet.providers():
            key = f"sk_test_{p['name'].replace('-', '_')}_{os.urandom(8).hex()}"
            secret = f"whsec_{os.urandom(12).hex()}"
            out[p["name"]] = {"api-key": key, "webhook-secret": secret}
            accounts.append(
                {
                    "provider": p["type"],
                    "account": p["account"],
                    "apiKey": key,
                    "webhookSecret": secret,
                }
            )
        self.sim.admin("POST", "accounts", {"accounts": accounts})
        return out

    def start_regions(self) -> None:
        assert self.api is not None
        # every region's gatewayUrl is a loopback edge on this one host, in plain http: the
        # gateways' test-only switch allows that (loopback only; production needs https). The
        # one setting of the host the pods get beyond what the operator rendered.
        host_env = {"GATEWAY_INSECURE_LOOPBACK": "1"}
        for name in self.names:
            kubelet = Kubelet(
                self.api,
                name,
                cluster.region_namespace(name),
                self.workdir / "pods" / name,
                host_env=host_env,
            )
            kubelet.prepare(on_note=self.note)
            self.kubelets[name] = kubelet
            self.stoppables.append(kubelet)
        self.say(
            "demo: starting each region's services ("
            + ", ".join(sorted(next(iter(self.kubelets.values())).pods))
            + ") from the rendered Deployments"
        )
        start_parallel({n: k.start for n, k in self.kubelets.items()}, workers=3)
        for name, kubelet in self.kubelets.items():
            self.edges[name].upstream = kubelet.entry().port
            inv = kubelet.pods["inventory"].url
            key = self.gateway_keys.get(cluster.region_namespace(name))
            for sku, qty in STOCK.items():
                # stock administration is a service call: signed with the region's key
                body = json.dumps({"available": qty}).encode()
                path = f"/v1/stock/{sku}"
                headers = principal.signed_headers(
                    key, "PUT", path, principal.internal("demo"), body
                )
                headers["Content-Type"] = "application/json"
                httpx.put(
                    f"{inv}{path}", content=body, headers=headers, timeout=10
                ).raise_for_status()

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            self.say(f"demo: note: {text}")

    # -- writers --------------------------------------------------------------------------------

    def read_writers(self) -> None:
        """Each market's writer: CheckoutRegion status.markets where the operator publishes it,
        else the rendered routing ConfigMap (the contract in design section 3)."""
        assert self.api is not None
        found: dict[str, tuple[str, int, str]] = {}
        messages: dict[str, str] = {}
        source = ""
        regions = self.api.regions()
        self.region_status = {
            cr["spec"]["region"]: cr.get("status") or {} for cr in regions if "spec" in cr
        }
        for cr in regions:
            for m in (cr.get("status") or {}).get("markets") or ():
                found[m["market"]] = (
                    m["writer"],
                    int(m.get("epoch", 0)),
                    m.get("state", "Serving"),
                )
                messages[m["market"]] = str(m.get("message") or "")
                source = "CheckoutRegion status.markets"
        routing = None
        t = self.now()
        for name in self.names:
            data = self.api.configmap(cluster.region_namespace(name), ROUTING_CONFIGMAP)
            if data and "routing.json" in data:
                rendered = json.loads(data["routing.json"])
                self._record_routing(t, name, rendered)
                if routing is None or name not in self.down:
                    routing = rendered
        if routing is not None:
            for m in routing["markets"]:
                route = (m["writer"], int(m["epoch"]), m.get("state", "Serving"))
                current = found.get(m["market"])
                if current is None or route[1] > current[1]:
                    found[m["market"]] = route
                    source = source or "routing ConfigMap"
        for market, (writer, epoch, state) in found.items():
            message = messages.get(market, "") if state != "Serving" else ""
            if (
                self.writers.get(market), self.epochs.get(market), self.states.get(market),
                self.messages.get(market, ""),
            ) != (writer, epoch, state, message):  # fmt: skip
                self.writer_events.append(
                    WriterEvent(t, market, writer, epoch, state, source, message)
                )
            self.writers[market] = writer
            self.epochs[market] = epoch
            self.states[market] = state
            self.messages[market] = message
        self.writer_source = source or self.writer_source

    def _record_routing(self, t: float, region: str, rendered: dict[str, Any]) -> None:
        """What each region's services follow: the routing ConfigMap rendered into the region
        (the write guard and the gateway read it), apart from the operator's status."""
        for m in rendered.get("markets") or ():
            key = (region, m["market"])
            route = (m["writer"], int(m["epoch"]), m.get("state", "Serving"))
            if self.routing_seen.get(key) != route:
                self.routing_seen[key] = route
                self.routing_events.append(
                    {"t": round(t, 2), "region": region, "market": m["market"],
                     "writer": route[0], "epoch": route[1], "state": route[2]}
                )  # fmt: skip

    def routing_serving(self, market: str, writer: str, epoch: int) -> bool:
        """Whether every running region's routing ConfigMap shows ``writer`` Serving ``market``
        at ``epoch`` or later (what the services follow)."""
        running = [n for n in self.names if n not in self.down]
        return all(
            (r := self.routing_seen.get((n, market))) is not None
            and r[0] == writer
            and r[1] >= epoch
            and r[2] == "Serving"
            for n in running
        )

    def _watch_loop(self) -> None:
        while not self._watch_stop.wait(0.5):
            with contextlib.suppress(Exception):
                self.read_writers()
            for name, kubelet in self.kubelets.items():
                if name not in self.down:
                    with contextlib.suppress(Exception):
                        kubelet.sync()

    def entries(self) -> dict[str, str]:
        """Region -> the URL its customers' writes enter by (the gateway once it runs)."""
        return {n: k.entry().url for n, k in self.kubelets.items()}

    # -- the run --------------------------------------------------------------------------------

    async def progress(self) -> None:
        tty = sys.stdout.isatty()
        last_print = 0.0
        while True:
            await asyncio.sleep(1.0)
            if self.load is None:
                continue
            rate, errors = self.load.window()
            writers = " ".join(
                f"{m}={self.writers.get(m, '?')}"
                + ("" if self.states.get(m) == "Serving" else f"({self.states.get(m)})")
                for m in sorted(self.writers)
            )
            acked = sum(1 for c in self.load.checkouts if c.outcome == "acknowledged")
            line = (
                f"[{self.phase:>7}] t={self.load.now():5.0f}s  {rate:4.1f} checkouts/s  "
                f"errors(5s)={errors:<3} acked={acked:<5} writers: {writers}"
            )
            if tty:
                print("\r" + line[:200].ljust(200), end="", flush=True)
            elif self.load.now() - last_print >= 5:
                print(line, flush=True)
                last_print = self.load.now()

    async def gameday(self) -> dict[str, Any]:
        opts = self.opts
        scenario = scenarios.get(opts.scenario)
        homes = {m: n for n in self.names for m in self.fleet.home_markets(n)}
        router = Router(lambda: dict(self.writers), self.entries, homes)
        self.load = LoadGen(router, opts.rate, token=self.issuer.token)
        self.load.t0 = time.monotonic()
        initial_writers = dict(self.writers)
        total = opts.before + opts.during + opts.after
        self.say(
            f"demo: load {opts.rate:g} checkouts/s for about {total:.0f} s (US, NL, DE, IN, BR, "
            f"with duplicate retries); GameDay: {scenario.title} ({opts.region}) after "
            f"{opts.before:.0f} s, recovery after {opts.during:.0f} s more, then "
            f"{opts.after:.0f} s with the region back"
        )
        await self.warm_up(router)
        self.load.t0 = time.monotonic()
        self.cpu["start"] = self.cpu_snapshot()
        progress = checkout_tasks.start("demo progress", self.progress)
        # arrivals go on until `after` seconds past the region's return (its restart can take
        # long on a loaded machine); the bound only guards against a hang
        load = asyncio.create_task(self.load.run(total + 900))
        result: dict[str, Any] = {"scenario": scenario.name, "region": opts.region}
        try:
            self.phase = "before"
            await asyncio.sleep(opts.before)
            self.phase = "during"
            self.marks["fault"] = self.load.now()
            fault_wall = time.time()
            self.cpu["fault"] = self.cpu_snapshot()
            await asyncio.to_thread(scenario.inject, self, opts.region)
            failover = await self.wait_failover(
                opts.region, initial_writers, scenario.expects_failover
            )
            result["failover"] = failover
            failover.update(self.lease_timing(opts.region, failover, fault_wall))
            follow = asyncio.create_task(self.wait_routing(failover))
            rest = opts.before + opts.during - self.load.now()
            if rest > 0:
                await asyncio.sleep(rest)
            self.phase = "recover"
            self.marks["recovery"] = self.load.now()
            try:
                await asyncio.to_thread(scenario.recover, self, opts.region)
                self.marks["recovered"] = self.load.now()
            except StackError as exc:
                self.note(f"{opts.region} did not come back: {exc.problem}")
            self.phase = "after"
            await asyncio.sleep(opts.after)
            self.load.stop_arrivals()
            await load
            self.phase = "drain"
            await self.load.drain(within=60)
            self.marks["end"] = self.load.now()
        finally:
            self.load.stop_arrivals()
            progress.cancel()
            if "follow" in locals():
                follow.cancel()
            if sys.stdout.isatty():
                print()
        result["writers_before"] = initial_writers
        result["writers_after"] = dict(self.writers)
        return result

    async def warm_up(self, router: Router) -> None:
        """``warmup`` seconds of the same load before the clock starts, not counted in the
        report: every process has just started (first requests import lazily, fill connection
        pools, the Temporal workers' caches and the JIT-less interpreter's caches), and what the
        report measures is a region's steady state."""
        if self.opts.warmup <= 0:
            return
        self.say(f"demo: warming up for {self.opts.warmup:g} s (same load, not counted)")
        warm = LoadGen(router, self.opts.rate, token=self.issuer.token, run_id="warmup")
        self.phase = "warm-up"
        await warm.run(self.opts.warmup)
        await warm.drain(within=30)
        acked = sum(1 for c in warm.checkouts if c.outcome == "acknowledged")
        self.timings["warmup"] = self.opts.warmup
        self.warmup_summary = {
            "seconds": self.opts.warmup,
            "attempted": len(warm.checkouts),
            "acknowledged": acked,
            "p95_ms": report.pct([c.latency_ms for c in warm.checkouts if c.latency_ms], 95),
        }

    def wait_serving(self, timeout: float = 120.0) -> None:
        """Wait until the operator shows every region Healthy and every market Serving from its
        home region. A load started earlier meets markets the first probes marked Down (503 +
        Retry-After 30): the operator's first status can say Serving before any probe ran."""
        homes = {m: n for n in self.names for m in self.fleet.home_markets(n)}
        self.say("demo: waiting for every market to be Serving from its home region")
        deadline = time.monotonic() + timeout
        began = time.monotonic()
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                self.read_writers()
            healthy = all(
                (self.region_status.get(n, {}).get("health") or {}).get("state") == "Healthy"
                for n in self.names
            )
            if (
                healthy
                and set(self.states) >= set(homes)
                and all(
                    self.states[m] == "Serving"
                    and self.writers.get(m) == home
                    and self.routing_serving(m, home, self.epochs.get(m, 0))
                    for m, home in homes.items()
                )
            ):
                self.timings["serving"] = time.monotonic() - began
                return
            time.sleep(0.5)
        self.note(
            f"not every market was Serving from its home region after {timeout:.0f} s: "
            + ", ".join(f"{m}={self.writers.get(m)}({self.states.get(m)})" for m in sorted(homes))
        )

    def cpu_snapshot(self) -> dict[str, float]:
        pods = {
            p.proc.pid: f"{component}[{region}]"
            for region, k in self.kubelets.items()
            for component, p in k.pods.items()
            if p.proc is not None
        }
        if self.sim is not None and self.sim.proc is not None:
            pods[self.sim.proc.pid] = "psp-sim"
        for region, infra in self.infra.items():
            for name, component in (("redis", infra.redis), ("postgres", infra.postgres)):
                for proc in component.procs:
                    with contextlib.suppress(RuntimeError):
                        pods[proc.pid] = f"{name}[{region}]"
        try:
            return cpu.snapshot(self.workdir, self.names, pods)
        except OSError:
            return {}

    async def wait_routing(self, failover: dict[str, Any]) -> None:
        """After the operator published new writers: when every running region's routing
        ConfigMap shows them Serving (what the write guards and gateways follow), and when a
        moved market's checkout was first acknowledged there."""
        assert self.load is not None
        if not failover.get("happened"):
            return
        moved = failover["moved"]
        epochs = failover["epochs"]
        fault = self.marks["fault"]
        while True:
            if all(self.routing_serving(m, w, epochs.get(m) or 0) for m, w in moved.items()):
                break
            await asyncio.sleep(0.25)
        self.marks["routing"] = self.load.now()
        failover["routing_seconds"] = round(self.marks["routing"] - fault, 2)

    def lease_timing(
        self, region: str, failover: dict[str, Any], fault_wall: float
    ) -> dict[str, Any]:
        """When each moved market's new writer got its write Lease, against the floor a
        correct operator cannot beat (the failover benchmark's goal: within 1 s of it)."""
        assert self.api is not None
        if not failover.get("happened"):
            return {}
        fleet = str(self.fleet.region(region)["spec"].get("fleet") or "")
        times = []
        for market, writer in (failover.get("moved") or {}).items():
            got = self.api.lease_acquired_at(fleet, market)
            if got is not None and got[0] == writer:
                times.append(got[1] - fault_wall)
        if not times:
            return {}
        floor = self.fleet.failover_floor_seconds(region)
        worst = max(times)
        return {
            "lease_seconds": round(worst, 2),
            "floor_seconds": floor,
            "within_goal": worst <= floor + 1.0,
        }

    async def wait_failover(
        self, region: str, before: dict[str, str], expected: bool
    ) -> dict[str, Any]:
        """Wait for the operator to show a new writer for the region's markets (status.markets
        or the routing ConfigMap). Never invents one: if nothing moves, it says so."""
        assert self.load is not None
        markets = sorted(m for m, w in before.items() if w == region)
        fault = self.marks["fault"]
        deadline = fault + self.opts.failover_timeout
        while self.load.now() < deadline:
            moved = {
                m: self.writers.get(m) for m in markets if self.writers.get(m) not in (None, region)
            }
            down = [m for m in markets if self.states.get(m) == "Down"]
            if markets and len(moved) + len(down) == len(markets) and moved:
                t = self.load.now()
                self.marks["failover"] = t
                return {
                    "happened": True,
                    "expected": expected,
                    "seconds": round(t - fault, 2),
                    "markets": markets,
                    "moved": moved,
                    "down": down,
                    "source": self.writer_source,
                    "epochs": {m: self.epochs.get(m) for m in markets},
                }
            await asyncio.sleep(0.25)
        moved = {
            m: self.writers.get(m) for m in markets if self.writers.get(m) not in (None, region)
        }
        return {
            "happened": False,
            "expected": expected,
            "markets": markets,
            "moved": moved,
            "down": [m for m in markets if self.states.get(m) == "Down"],
            "waited_seconds": self.opts.failover_timeout,
            "operator_says": {m: self.messages.get(m, "") for m in markets},
            "replication": {
                n: st.get("replication") for n, st in self.region_status.items() if n != region
            },
            "message": (
                f"no failover happened: after {self.opts.failover_timeout:.0f} s the operator "
                f"still shows {', '.join(f'{m}={self.writers.get(m)}' for m in markets)} "
                f"(source: {self.writer_source}); "
                + (
                    "this operator build publishes no failover (CheckoutRegion status.markets "
                    "is empty), so the markets stayed down"
                    if not any(e.source.startswith("CheckoutRegion") for e in self.writer_events)
                    else "the operator did not move them: "
                    + "; ".join(
                        f"{m}: {self.messages.get(m) or self.states.get(m)}" for m in markets
                    )
                )
            ),
        }

    async def check(self) -> verify.Verdict:
        """The promises, from the systems of record (:func:`verify.check`: what cannot be read
        within its deadline is reported as unverified, never as a broken promise)."""
        assert self.sim is not None
        assert self.load is not None
        sim = self.sim

        async def ledger() -> dict[str, Any]:
            return await asyncio.to_thread(sim.ledger)

        return await verify.check(
            ledger,
            [
                verify.Region(name, infra.database_url, infra.kafka.bootstrap)
                for name, infra in self.infra.items()
            ],
            [(c.checkout_id, c.region) for c in self.load.checkouts if c.outcome == "acknowledged"],
            STOCK,
            ledger_transient=(httpx.HTTPError, OSError, StackError),
        )

    # -- teardown -------------------------------------------------------------------------------

    def down_all(self) -> None:
        self._watch_stop.set()
        if self._watch is not None:
            self._watch.join(5)
        for thing in reversed(self.stoppables):
            with contextlib.suppress(Exception):
                thing.stop()
        if self.api is not None:
            self.api.close()
        if not self.opts.keep and not self.failed:
            import shutil

            shutil.rmtree(self.workdir, ignore_errors=True)


def run(opts: Options) -> int:
    began = time.monotonic()
    demo = Demo(opts)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # Ctrl-C and SIGTERM stop the demo even when it inherited SIGINT ignored (a job started in
    # the background by a shell without job control, as CI runners do): Python then leaves
    # SIGINT ignored and the first Ctrl-C did nothing.
    previous = {s: signal.signal(s, on_term) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        demo.up()
        startup = time.monotonic() - began
        result = asyncio.run(_run(demo))
        verdict = result.pop("_verdict")
        assert demo.load is not None
        summary = report.build(
            demo=demo, load=demo.load, verdict=verdict, result=result,
            startup_seconds=startup, total_seconds=time.monotonic() - began,
        )  # fmt: skip
        paths = report_files.write(summary, demo.load, demo, opts.out)
        print(report.text(summary))
        print(f"demo: report written to {', '.join(str(p) for p in paths)}")
        return int(summary["exit_code"])
    except Exception:
        demo.failed = True
        raise
    finally:
        # first: a Ctrl-C from here on must not cut the clean-up short (stopping.Shutdown)
        with stopping.Shutdown():
            print("demo: stopping everything it started", flush=True)
            demo.down_all()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


async def _run(demo: Demo) -> dict[str, Any]:
    result = await demo.gameday()
    demo.phase = "verify"
    demo.say("demo: checking the promises (PSP ledger, inventory, orders in DB and Kafka)")
    result["_verdict"] = await demo.check()
    return result
