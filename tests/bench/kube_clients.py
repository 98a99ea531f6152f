"""One Kubernetes client doing what the operator and the lease keeper do, in its own process.

Run by ``test_kube_client_bench.py`` as ``python kube_clients.py CLIENT KUBECONFIG NAMESPACE
REGION LEASE N`` (CLIENT: ours, lightkube, kr8s, kubernetes_asyncio), so each client's import
time, CPU and peak RSS are its own. Per client, N times each, against a real kube-apiserver:

* ``get_cr``: GET the CheckoutRegion;
* ``patch_status``: merge-patch its ``status`` subresource (``observedGeneration``);
* ``patch_lease``: merge-patch the Lease at the resourceVersion last read (compare-and-swap,
  the keeper's renewal: one annotation and ``spec.renewTime``);
* ``list_watch``: LIST the fleet's Leases by label, patch the Lease, WATCH from the list's
  resourceVersion (with ``allowWatchBookmarks`` where the client can send it) until the
  MODIFIED event of that patch arrives, then close the watch (its connection cannot be kept:
  the server has not ended the response): an informer's start plus one event.

Prints one JSON line: import seconds, latencies (ms) per operation, CPU seconds, peak RSS,
wall time, and what the client could not do as asked (``notes``: read in the code of the
versions pinned by the ``bench-clients`` extra; re-read them when a pin moves). With
``KUBE_CLIENT_BENCH_PROFILE=<client>[,<client>...]`` each named client's loop runs under
cProfile (its top functions by cumulative time go to stderr; its figures then include the
profiler's cost).
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import datetime
import json
import os
import pstats
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

GROUP = "checkout-operator.io"
VERSION = "v1alpha1"
PLURAL = "checkoutregions"
FLEET_LABEL = "checkout-operator.io/bench-fleet"


def memory_kib(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process: unlike ``ru_maxrss``, not inherited
    from the parent that forked it."""
    for line in open("/proc/self/status").read().splitlines():  # noqa: SIM115
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_now() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def micro_time() -> str:
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_patch(rv: str, i: int) -> dict[str, Any]:
    return {
        "metadata": {
            "resourceVersion": rv,
            "annotations": {"bench.checkout-operator.io/n": str(i)},
        },
        "spec": {"renewTime": micro_time()},
    }


class Ops:
    """The four operations, as one client does them (subclasses), and the notes it earned."""

    notes: list[str]

    async def open(self, kubeconfig: str) -> None: ...
    async def close(self) -> None: ...
    async def get_cr(self, ns: str, name: str) -> None: ...
    async def patch_status(self, ns: str, name: str, i: int) -> None: ...
    async def patch_lease(self, ns: str, name: str, rv: str, i: int) -> str: ...
    async def read_lease_rv(self, ns: str, name: str) -> str: ...
    async def list_watch(self, ns: str, name: str, i: int) -> str: ...

    """Returns the Lease's resourceVersion after its patch."""


class Ours(Ops):
    async def open(self, kubeconfig: str) -> None:
        from checkout_kube import client, config

        self.notes = []
        self.c = client.KubeClient(config.from_kubeconfig_file(kubeconfig))
        self.api = f"{GROUP}/{VERSION}"

    async def close(self) -> None:
        await self.c.aclose()

    async def get_cr(self, ns: str, name: str) -> None:
        await self.c.get(self.api, "CheckoutRegion", name, ns)

    async def patch_status(self, ns: str, name: str, i: int) -> None:
        await self.c.patch_status(self.api, "CheckoutRegion", name, ns, {"observedGeneration": i})

    async def read_lease_rv(self, ns: str, name: str) -> str:
        obj = await self.c.get("coordination.k8s.io/v1", "Lease", name, ns)
        return str(obj["metadata"]["resourceVersion"])

    async def patch_lease(self, ns: str, name: str, rv: str, i: int) -> str:
        obj = await self.c.merge_patch(
            "coordination.k8s.io/v1", "Lease", name, ns, lease_patch(rv, i)
        )
        return str(obj["metadata"]["resourceVersion"])

    async def list_watch(self, ns: str, name: str, i: int) -> str:
        lease_api = "coordination.k8s.io/v1"
        items, rv = await self.c.list_versioned(lease_api, "Lease", ns, {FLEET_LABEL: "bench"})
        want = await self.patch_lease(ns, name, str(items[0]["metadata"]["resourceVersion"]), i)
        events = self.c.watch(
            lease_api, "Lease", ns, {FLEET_LABEL: "bench"}, timeout_seconds=10, resource_version=rv
        )
        async with contextlib.aclosing(events):
            async for type_, obj in events:
                if type_ == "MODIFIED" and obj["metadata"]["resourceVersion"] == want:
                    return want
        raise RuntimeError("watch ended before the patch's event")


class Lightkube(Ops):
    async def open(self, kubeconfig: str) -> None:
        from lightkube import AsyncClient, KubeConfig
        from lightkube.generic_resource import create_namespaced_resource
        from lightkube.resources.coordination_v1 import Lease

        self.notes = [
            "watch() sends no allowWatchBookmarks (its parameters are fixed): no bookmarks",
            "410 Gone: watch(on_error=...) restarts the watch without a resourceVersion "
            "(synthetic ADDED of everything, no relist diff)",
        ]
        self.Lease = Lease
        self.Region = create_namespaced_resource(
            GROUP, VERSION, "CheckoutRegion", PLURAL, verbs=None
        )
        self.c = AsyncClient(KubeConfig.from_file(kubeconfig), field_manager="bench")

    async def close(self) -> None:
        await self.c.close()

    async def get_cr(self, ns: str, name: str) -> None:
        await self.c.get(self.Region, name, namespace=ns)

    async def _merge(self, res: Any, ns: str, name: str, body: dict[str, Any]) -> str:
        from lightkube.types import PatchType

        obj = await self.c.patch(res, name, body, namespace=ns, patch_type=PatchType.MERGE)
        assert obj.metadata is not None
        return str(obj.metadata.resourceVersion)

    async def patch_status(self, ns: str, name: str, i: int) -> None:
        await self._merge(self.Region.Status, ns, name, {"status": {"observedGeneration": i}})

    async def read_lease_rv(self, ns: str, name: str) -> str:
        obj = await self.c.get(self.Lease, name, namespace=ns)
        assert obj.metadata is not None
        return str(obj.metadata.resourceVersion)

    async def patch_lease(self, ns: str, name: str, rv: str, i: int) -> str:
        return await self._merge(self.Lease, ns, name, lease_patch(rv, i))

    async def list_watch(self, ns: str, name: str, i: int) -> str:
        # lightkube's list() is an iterator over items: the list's own resourceVersion is not
        # returned, so the newest item's resourceVersion stands in for it
        items = [
            x async for x in self.c.list(self.Lease, namespace=ns, labels={FLEET_LABEL: "bench"})
        ]
        rv = max((str(x.metadata.resourceVersion) for x in items if x.metadata), key=int)
        want = await self.patch_lease(ns, name, rv, i)
        events = self.c.watch(
            self.Lease, namespace=ns, labels={FLEET_LABEL: "bench"}, resource_version=rv,
            server_timeout=10,
        )  # fmt: skip
        async with contextlib.aclosing(events):
            async for type_, obj in events:
                if type_ == "MODIFIED" and obj.metadata and obj.metadata.resourceVersion == want:
                    return want
        raise RuntimeError("watch ended before the patch's event")


class Kr8s(Ops):
    async def open(self, kubeconfig: str) -> None:
        import kr8s.asyncio

        self.notes = [
            "watch(since=...) sends no allowWatchBookmarks: no bookmarks",
            "410 Gone: restarts the watch at the same (too old) resourceVersion, with no "
            "backoff and no relist",
            "no watch timeout: the stream ends only when the server ends it",
        ]
        self.api = await kr8s.asyncio.api(kubeconfig=kubeconfig)

    async def close(self) -> None:
        pass

    async def _call(
        self, method: str, api: str, ns: str, url: str, body: dict[str, Any] | None = None
    ) -> Any:
        """kr8s's raw call (its objects have no status subresource nor a compare-and-swap
        merge patch): the JSON answer."""
        extra: dict[str, Any] = {"params": {"labelSelector": f"{FLEET_LABEL}=bench"}}
        if body is not None:
            extra = {
                "headers": {"Content-Type": "application/merge-patch+json"},
                "data": json.dumps(body),
            }
        async with self.api.call_api(
            method, version=api, base="/apis", namespace=ns, url=url, **extra
        ) as r:
            return r.json()

    async def get_cr(self, ns: str, name: str) -> None:
        await self._call("GET", f"{GROUP}/{VERSION}", ns, f"{PLURAL}/{name}")

    async def patch_status(self, ns: str, name: str, i: int) -> None:
        body = {"status": {"observedGeneration": i}}
        await self._call("PATCH", f"{GROUP}/{VERSION}", ns, f"{PLURAL}/{name}/status", body)

    async def read_lease_rv(self, ns: str, name: str) -> str:
        lease = await self._call("GET", "coordination.k8s.io/v1", ns, f"leases/{name}")
        return str(lease["metadata"]["resourceVersion"])

    async def patch_lease(self, ns: str, name: str, rv: str, i: int) -> str:
        body = lease_patch(rv, i)
        lease = await self._call("PATCH", "coordination.k8s.io/v1", ns, f"leases/{name}", body)
        return str(lease["metadata"]["resourceVersion"])

    async def list_watch(self, ns: str, name: str, i: int) -> str:
        body = await self._call("GET", "coordination.k8s.io/v1", ns, "leases")
        rv = str(body["metadata"]["resourceVersion"])
        want = await self.patch_lease(
            ns, name, str(body["items"][0]["metadata"]["resourceVersion"]), i
        )
        events = self.api.async_watch(
            "leases.coordination.k8s.io", namespace=ns,
            label_selector={FLEET_LABEL: "bench"}, since=rv,
        )  # fmt: skip
        async with contextlib.aclosing(events):
            async for type_, obj in events:
                if type_ == "MODIFIED" and obj.metadata.resourceVersion == want:
                    return want
        raise RuntimeError("watch ended before the patch's event")


class KubernetesAsyncio(Ops):
    async def open(self, kubeconfig: str) -> None:
        from kubernetes_asyncio import client, config

        self.notes = [
            "Watch.stream: 410 Gone retried once at the same resourceVersion, then raised "
            "(the caller relists)",
        ]
        self.client = client
        self.cfg = client.Configuration()
        await config.load_kube_config(config_file=kubeconfig, client_configuration=self.cfg)
        self.api_client = client.ApiClient(self.cfg)
        self.custom = client.CustomObjectsApi(self.api_client)
        self.coord = client.CoordinationV1Api(self.api_client)

    async def close(self) -> None:
        await self.api_client.close()

    async def get_cr(self, ns: str, name: str) -> None:
        await self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)

    async def patch_status(self, ns: str, name: str, i: int) -> None:
        await self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, ns, PLURAL, name, {"status": {"observedGeneration": i}},
            _content_type="application/merge-patch+json",
        )  # fmt: skip

    async def read_lease_rv(self, ns: str, name: str) -> str:
        lease = await self.coord.read_namespaced_lease(name, ns)
        return str(lease.metadata.resource_version)

    async def patch_lease(self, ns: str, name: str, rv: str, i: int) -> str:
        lease = await self.coord.patch_namespaced_lease(
            name, ns, lease_patch(rv, i), _content_type="application/merge-patch+json"
        )
        return str(lease.metadata.resource_version)

    async def list_watch(self, ns: str, name: str, i: int) -> str:
        from kubernetes_asyncio import watch

        listed = await self.coord.list_namespaced_lease(ns, label_selector=f"{FLEET_LABEL}=bench")
        rv = str(listed.metadata.resource_version)
        want = await self.patch_lease(ns, name, str(listed.items[0].metadata.resource_version), i)
        w = watch.Watch()
        async with w.stream(
            self.coord.list_namespaced_lease, ns, label_selector=f"{FLEET_LABEL}=bench",
            resource_version=rv, allow_watch_bookmarks=True, timeout_seconds=10,
        ) as stream:  # fmt: skip
            async for event in stream:
                if (
                    event["type"] == "MODIFIED"
                    and event["object"].metadata.resource_version == want
                ):
                    return want
        raise RuntimeError("watch ended before the patch's event")


CLIENTS: dict[str, tuple[str, Callable[[], Ops]]] = {
    "ours": ("checkout_kube.client", Ours),
    "lightkube": ("lightkube", Lightkube),
    "kr8s": ("kr8s.asyncio", Kr8s),
    "kubernetes_asyncio": ("kubernetes_asyncio.client", KubernetesAsyncio),
}


async def timed(samples: list[float], call: Awaitable[Any]) -> Any:
    t = time.perf_counter()
    out = await call
    samples.append((time.perf_counter() - t) * 1000)
    return out


async def main(which: str, kubeconfig: str, ns: str, region: str, lease: str, n: int) -> None:
    module, make = CLIENTS[which]
    rss_before = memory_kib("VmRSS")
    t = time.perf_counter()
    __import__(module)
    import_s = time.perf_counter() - t
    rss_import = memory_kib("VmRSS")
    ops = make()
    await ops.open(kubeconfig)
    lat: dict[str, list[float]] = {
        k: [] for k in ("get_cr", "patch_status", "patch_lease", "list_watch")
    }
    try:
        # one warm-up round (connections, discovery), not counted
        await ops.get_cr(ns, region)
        rv = await ops.read_lease_rv(ns, lease)
        profiled = which in os.environ.get("KUBE_CLIENT_BENCH_PROFILE", "").split(",")
        profile = cProfile.Profile() if profiled else None
        if profile is not None:
            profile.enable()
        cpu0, wall0 = cpu_now(), time.perf_counter()
        for i in range(n):
            await timed(lat["get_cr"], ops.get_cr(ns, region))
            await timed(lat["patch_status"], ops.patch_status(ns, region, i + 1))
            rv = await timed(lat["patch_lease"], ops.patch_lease(ns, lease, rv, i))
            rv = await timed(lat["list_watch"], ops.list_watch(ns, lease, i))
        cpu, wall = cpu_now() - cpu0, time.perf_counter() - wall0
        if profile is not None:
            profile.disable()
            pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
    finally:
        await ops.close()
    print(json.dumps({
        "client": which,
        "import_s": import_s,
        "import_rss_kib": rss_import - rss_before,
        "peak_rss_kib": memory_kib("VmHWM"),
        "latency_ms": lat,
        "cpu_s": cpu,
        "wall_s": wall,
        "ops": 4 * n,
        "notes": ops.notes,
    }))  # fmt: skip


if __name__ == "__main__":
    which, kubeconfig, ns, region, lease, n = sys.argv[1:7]
    asyncio.run(main(which, kubeconfig, ns, region, lease, int(n)))
