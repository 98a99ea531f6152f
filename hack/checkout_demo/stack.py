"""The demo's stack: the management control plane, each region's infrastructure, the operator
(installed by its Helm chart), the fleet's CRs and each region's services started from what the
operator rendered. :class:`checkout_demo.demo.Demo` runs the GameDay on it; the GameDay
scenarios act on it (it is their :class:`checkout_demo.view.Stage`)."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from checkout_demo import auth, cluster, cpu
from checkout_demo.infra import BACKGROUND_NICE, Edge, PspSim, RegionInfra, start_parallel
from checkout_demo.kubelet import Kubelet
from checkout_demo.load import LIMITED_SKU
from checkout_services.common import principal
from checkout_stack.components.kube import ControlPlane

STOCK = {"tee": 1_000_000, "mug": 1_000_000, LIMITED_SKU: 40}


class Stack:
    """Everything the demo starts, in the order it stops it in reverse (``stoppables``)."""

    def __init__(self, workdir: Path, say: Callable[[str], None] = print) -> None:
        self.workdir = workdir
        self.say = say
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
        self.timings: dict[str, float] = {}
        self.down: set[str] = set()
        """The regions a GameDay scenario took down."""
        self.applied_fleet: cluster.Fleet | None = None
        self.lease_kubeconfig: Path | None = None

    def up(self) -> None:
        """Everything up to each region's services running (automatic failover not armed)."""
        w = self.workdir
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

    def entries(self) -> dict[str, str]:
        """Region -> the URL its customers' writes enter by (the gateway once it runs)."""
        return {n: k.entry().url for n, k in self.kubelets.items()}

    def cpu_snapshot(self) -> dict[str, float]:
        """CPU seconds so far per process of the stack (:func:`checkout_demo.cpu.snapshot`)."""
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

    def stop(self) -> None:
        for thing in reversed(self.stoppables):
            with contextlib.suppress(Exception):
                thing.stop()
        if self.api is not None:
            self.api.close()
