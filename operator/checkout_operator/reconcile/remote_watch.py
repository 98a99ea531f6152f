"""Watches of the children in remote clusters: one per remote cluster and watched child kind.

A remote cluster is named by the Secret holding its kubeconfig (namespace, name, key): every
region pointing at the same Secret shares its watches. The first region that names a Secret
starts them; the last one leaving stops them. Each watch is ``checkout_kube.watch.list_watch``
(list, then watch from that resourceVersion with bookmarks, relist on 410, backoff), cluster
wide, selecting the operator's children by the managed-by label. A child event maps to its
region (child namespace + region label) and pokes that region's reconcile, as local child
events do.

One supervisor task per cluster: every ``interval`` seconds (and at once when a watch fails)
it re-reads the Secret (``RemoteClients.get`` rebuilds the client, closing the old one's
connections, when the Secret's resourceVersion changed: rotation needs no restart), restarts
the watches on a new client, probes the API server and records ``RemoteClusterReachable`` on
the cluster's regions (written only on change, see ``reachable``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import checkout_tasks as tasks
from checkout_kube import client as kclient
from checkout_kube import errors as kerrors
from checkout_kube import watch as kwatch
from checkout_operator import metrics
from checkout_operator.kube import reachability
from checkout_operator.reconcile import index, reachable, region

logger = logging.getLogger("checkout_operator.remote_watch")

WATCHED_KINDS: Final[tuple[tuple[str, str], ...]] = (
    ("apps/v1", "Deployment"),
    ("v1", "ConfigMap"),
    ("v1", "Service"),
)
"""The child kinds watched in every remote cluster (the same as in the operator's own)."""

RECHECK_TICKS: Final = 12
"""Every this many probes the regions' conditions are read again (and rewritten if lost)."""

MANAGED: Final = {region.MANAGED_BY_LABEL: region.MANAGED_BY}

ClusterKey = tuple[str, str, str]
"""(Secret namespace, Secret name, data key) of a remote cluster's kubeconfig."""


def cluster_of(body: Mapping[str, Any]) -> tuple[ClusterKey, str, str] | None:
    """(cluster, children's namespace there, region name) of a remote region; None if local."""
    placement = region.placement_of(body)
    remote = placement.remote
    if remote is None or not remote.secret_name:
        return None
    key = (remote.secret_namespace, remote.secret_name, remote.secret_key)
    return key, placement.namespace, placement.region


@dataclass
class Cluster:
    """The shared state of one remote cluster: its regions, client, watches and reachability."""

    key: ClusterKey
    regions: dict[index.Ref, tuple[str, str]] = field(default_factory=dict)
    """Region -> (children's namespace in the cluster, region label value)."""
    client: kclient.KubeClient | None = None
    watches: list[tasks.Guarded] = field(default_factory=list)
    supervisor: tasks.Guarded | None = None
    state: reachability.Reachability | None = None
    recorded: dict[index.Ref, reachability.Reachability] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def label(self) -> str:
        return f"{self.key[0]}/{self.key[1]}"

    def region_of(self, child: Mapping[str, Any]) -> index.Ref | None:
        meta = child.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        name = (meta.get("labels") or {}).get(region.REGION_LABEL)
        for ref, where in self.regions.items():
            if where == (namespace, name):
                return ref
        return None


class RemoteWatches:
    """Every remote cluster's watches; ``track`` / ``forget`` regions as they come and go."""

    def __init__(
        self,
        ctx: region.Context,
        on_child: Callable[[index.Ref], object],
        *,
        interval: float = 5.0,
        kinds: tuple[tuple[str, str], ...] = WATCHED_KINDS,
    ) -> None:
        self.ctx = ctx
        self.on_child = on_child
        self.interval = interval
        self.kinds = kinds
        self.clusters: dict[ClusterKey, Cluster] = {}

    # -- membership ------------------------------------------------------------------------

    def track(self, body: Mapping[str, Any]) -> None:
        """Record where region ``body`` lives now (starting its cluster's watches if new)."""
        ref = index.ref(body)
        found = cluster_of(body)
        if found is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            self.forget(ref)
            return
        key, namespace, name = found
        for other in list(self.clusters.values()):
            if other.key != key and ref in other.regions:
                self._leave(other, ref)
        cluster = self.clusters.get(key)
        if cluster is None:
            cluster = self.clusters[key] = Cluster(key)
            cluster.supervisor = tasks.start(
                f"remote-cluster {cluster.label}", lambda: self._supervise(cluster), logger=logger
            )
        if cluster.regions.get(ref) != (namespace, name):
            cluster.regions[ref] = (namespace, name)
            cluster.wake.set()  # record its condition now

    def forget(self, ref: index.Ref) -> None:
        """Region ``ref`` is gone (or local now)."""
        for cluster in list(self.clusters.values()):
            if ref in cluster.regions:
                self._leave(cluster, ref)

    def sync(self, bodies: Iterable[Mapping[str, Any]]) -> None:
        """Track exactly ``bodies`` (every region the operator covers): the periodic resync's
        safety net for a missed creation or deletion."""
        bodies = list(bodies)
        present = {index.ref(b) for b in bodies}
        for body in bodies:
            self.track(body)
        for cluster in list(self.clusters.values()):
            for ref in set(cluster.regions) - present:
                self._leave(cluster, ref)

    def _leave(self, cluster: Cluster, ref: index.Ref) -> None:
        cluster.regions.pop(ref, None)
        cluster.recorded.pop(ref, None)
        reachable.forget(ref)
        if not cluster.regions:
            del self.clusters[cluster.key]
            if cluster.supervisor is not None:
                cluster.supervisor.cancel()

    def watch_count(self, key: ClusterKey) -> int:
        cluster = self.clusters.get(key)
        return sum(1 for t in cluster.watches if not t.done()) if cluster else 0

    # -- per cluster -----------------------------------------------------------------------

    async def _supervise(self, cluster: Cluster) -> None:
        ticks = 0
        try:
            while True:
                ticks += 1
                if ticks % RECHECK_TICKS == 0:
                    # a reconcile that read the region before a condition was written may have
                    # written its status without it: look again now and then (reads only)
                    cluster.recorded.clear()
                cluster.wake.clear()
                state = await self._check(cluster)
                await self._record(cluster, state)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(cluster.wake.wait(), self.interval)
        finally:
            # a restarted supervisor (after a crash) starts the watches again with its client
            self._stop_watches(cluster)
            cluster.client = None
            metrics.REMOTE_WATCHES.labels(secret=cluster.label).set(0)

    async def _check(self, cluster: Cluster) -> reachability.Reachability:
        assert self.ctx.remotes is not None
        ns, name, key = cluster.key
        try:
            client = await self.ctx.remotes.get(ns, name, key)
        except kerrors.KubeError as exc:
            return reachability.classify(exc)
        if client is not cluster.client:
            self._stop_watches(cluster)
            cluster.client = client
            self._start_watches(cluster, client)
        try:
            await client.request(
                "GET",
                "/api/v1/configmaps",
                params={"limit": "1", "labelSelector": _selector()},
                target="the remote cluster's ConfigMaps",
            )
        except kerrors.KubeError as exc:
            return reachability.classify(exc)
        return reachability.OK

    async def _record(self, cluster: Cluster, state: reachability.Reachability) -> None:
        if state != cluster.state:
            logger.info("remote cluster %s: %s (%s)", cluster.label, state.reason, state.message)
            cluster.state = state
        for ref in list(cluster.regions):
            if cluster.recorded.get(ref) == state:
                continue
            try:
                written = await reachable.record(self.ctx, ref, state)
            except kerrors.KubeError as exc:
                logger.warning("RemoteClusterReachable of %s not written: %s", ref, exc)
                continue
            if not written:
                # seen in place: until then it is read again on the next probe (a reconcile
                # that read the region before the write may have written its status without it)
                cluster.recorded[ref] = state
            elif state.reachable:
                self.on_child(ref)  # back: catch up on what changed meanwhile

    def _start_watches(self, cluster: Cluster, client: kclient.KubeClient) -> None:
        cluster.watches = [
            tasks.start(
                f"remote-watch {cluster.label} {kind}",
                functools.partial(self._watch, cluster, client, api_version, kind),
                logger=logger,
            )
            for api_version, kind in self.kinds
        ]
        metrics.REMOTE_WATCHES.labels(secret=cluster.label).set(len(cluster.watches))

    def _stop_watches(self, cluster: Cluster) -> None:
        for task in cluster.watches:
            task.cancel()
        cluster.watches = []

    async def _watch(
        self, cluster: Cluster, client: kclient.KubeClient, api_version: str, kind: str
    ) -> None:
        def failed(_: kerrors.KubeError) -> None:
            if client is cluster.client:
                cluster.wake.set()  # probe now: the condition may have to change

        async for type_, child in kwatch.list_watch(
            client, api_version, kind, None, MANAGED, on_error=failed
        ):
            ref = cluster.region_of(child)
            if ref is not None:
                logger.debug("remote %s %s/%s: reconcile %s", type_, kind, _name(child), ref)
                self.on_child(ref)

    async def aclose(self) -> None:
        running = [c.supervisor for c in self.clusters.values() if c.supervisor is not None]
        running += [w for c in self.clusters.values() for w in c.watches]
        self.clusters.clear()
        for handle in running:
            await handle.stop()


def _selector() -> str:
    return ",".join(f"{k}={v}" for k, v in MANAGED.items())


def _name(child: Mapping[str, Any]) -> str:
    return str((child.get("metadata") or {}).get("name") or "")
