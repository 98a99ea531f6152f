"""Watching: the engine's in-memory index of CheckoutRegions and its wake-ups.

Two guarded loops keep what the decision loop reads, so that a round reads memory, not the
apiserver:

* the **region watch** lists the CheckoutRegions once, then follows their watch; each body is
  parsed once per change (an invalid or deleting one is left out); a region added, deleted or
  given a new ``spec`` (generation) wakes the decision loop. When the server ends a watch the
  loop lists again and re-watches (the client's watch starts "from now on", so the re-list is
  what makes the index whole again);
* the **lease watch** wakes the decision loop when a market Lease changes writer, epoch, state
  or acknowledgement (renewals alone do not wake it).

Both raise on a failed list or watch; the guard logs it and restarts them with backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from pydantic import ValidationError

from checkout_contract import lease as contract
from checkout_kube import client as kclient
from checkout_operator.api import load
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.reconcile import index, leases, region
from checkout_operator.reconcile.failover.recording import Member

logger = logging.getLogger("checkout_operator.failover")

WATCH_SECONDS: Final = 60
SHORTEST_WATCH: Final = 1.0
"""A watch the server ends sooner than this (an ERROR event, say) counts as a failure: the
guard's backoff then spaces the retries instead of a hot loop of list + watch."""


class WatchEndedEarly(Exception):
    pass


class RegionIndex:
    """CheckoutRegions by namespace and name: the body as last seen and its parse."""

    def __init__(self) -> None:
        self._regions: dict[index.Ref, tuple[dict[str, Any], CheckoutRegion | None, int]] = {}
        self.synced = False
        """True once a full list has been read."""

    def replace(self, bodies: Sequence[Mapping[str, Any]], namespace: str | None) -> bool:
        """The full list of ``namespace`` (None: all): True when a region came, went or
        changed its spec."""
        before = {r: g for r, (_, _, g) in self._regions.items()}
        for ref in [r for r in self._regions if namespace is None or r.namespace == namespace]:
            del self._regions[ref]
        for body in bodies:
            self._put(body)
        self.synced = True
        return before != {r: g for r, (_, _, g) in self._regions.items()}

    def apply(self, type_: str, body: Mapping[str, Any]) -> bool:
        """One watch event: True when a region came, went or changed its spec."""
        ref = index.ref(body)
        old = self._regions.get(ref)
        if type_ == "DELETED":
            self._regions.pop(ref, None)
            return old is not None
        if type_ not in ("ADDED", "MODIFIED"):
            return False
        self._put(body)
        new = self._regions.get(ref)
        return old is None or new is None or old[2] != new[2]

    def _put(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        parsed: CheckoutRegion | None = None
        if not meta.get("deletionTimestamp"):
            try:
                candidate = load.parse({k: v for k, v in body.items() if k != "status"})
            except (load.InvalidObject, ValidationError, ValueError):
                candidate = None
            if isinstance(candidate, CheckoutRegion):
                parsed = candidate
        generation = int(meta.get("generation") or 0) if parsed is not None else -1
        self._regions[index.ref(body)] = (dict(body), parsed, generation)

    def namespaces(self) -> list[str]:
        return sorted({r.namespace for r in self._regions})

    def members(self, namespace: str) -> list[Member]:
        """The valid, live CheckoutRegions of ``namespace`` (by name)."""
        return [
            (body, parsed)
            for ref, (body, parsed, _) in sorted(self._regions.items())
            if ref.namespace == namespace and parsed is not None
        ]


def fleets(members: Sequence[Member]) -> dict[str, list[Member]]:
    out: dict[str, list[Member]] = {}
    for body, parsed in members:
        out.setdefault(parsed.spec.fleet, []).append((body, parsed))
    return out


class Watcher:
    def __init__(
        self,
        client: kclient.KubeClient,
        namespace: str | None,
        wake: Callable[[], None],
        regions: RegionIndex | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.regions = regions if regions is not None else RegionIndex()
        """Shared by the watchers of several namespaces (one per watched namespace: an operator
        with per-namespace RBAC may not list CheckoutRegions cluster-wide)."""
        self._wake = wake
        self._lease_states: dict[str, tuple[str, int, str, int]] = {}

    async def list_regions(self) -> None:
        bodies = await self.client.list(region.API_VERSION, region.REGION_KIND, self.namespace)
        if self.regions.replace(bodies, self.namespace):
            self._wake()

    async def watch_regions(self) -> None:
        while True:
            await self.list_regions()
            began = time.monotonic()
            async for type_, obj in self.client.watch(
                region.API_VERSION, region.REGION_KIND, self.namespace,
                timeout_seconds=WATCH_SECONDS,
            ):  # fmt: skip
                if self.regions.apply(type_, obj):
                    self._wake()
            _check_length("CheckoutRegions", began)

    async def watch_leases(self) -> None:
        while True:
            began = time.monotonic()
            async for _type, obj in self.client.watch(
                contract.API_VERSION, leases.KIND, self.namespace, contract.FLEET_LABEL,
                timeout_seconds=WATCH_SECONDS,
            ):  # fmt: skip
                lease = contract.WriteLease.parse(obj)
                meta = obj.get("metadata") or {}
                name = f"{meta.get('namespace')}/{meta.get('name')}"
                essence = (lease.holder, lease.epoch, lease.state, lease.acked_epoch)
                if self._lease_states.get(name) != essence:
                    self._lease_states[name] = essence
                    self._wake()
            _check_length("market Leases", began)


def _check_length(what: str, began: float) -> None:
    if time.monotonic() - began < SHORTEST_WATCH:
        raise WatchEndedEarly(f"the watch of {what} ended at once")
