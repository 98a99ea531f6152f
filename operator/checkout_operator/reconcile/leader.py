"""Operator HA: only the replica that holds the leader Lease runs the failover engine.

A ``coordination.k8s.io/v1`` Lease (default ``checkout-operator-failover`` in the operator's
first watched namespace) names the acting replica. Each replica tries every ``retry`` seconds:
create it when missing, renew it when it holds it, take it over (leaseTransitions + 1) when it
expired; every write is a compare-and-swap (a merge patch carrying the resourceVersion read), so
two replicas never both win. A replica acts only while its last successful renewal is younger
than ``duration - skew`` (its own monotonic clock, measured from before the request): a replica
cut off from the apiserver stops acting before another may take over. The market leases are CAS-
protected on their own, so even two acting replicas could not promote twice; the leader Lease
keeps them from racing at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any, Final

from checkout_contract import lease as contract
from checkout_contract import timeutil
from checkout_kube import client as kclient
from checkout_kube import errors as kerrors

API_VERSION: Final = "coordination.k8s.io/v1"
DEFAULT_NAME: Final = "checkout-operator-failover"

logger = logging.getLogger("checkout_operator.leader")


def default_identity() -> str:
    """``<pod or host>-<pid>-<random>``: unique per process, and says which pod leads."""
    host = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Leader:
    def __init__(
        self,
        client: kclient.KubeClient,
        namespace: str,
        *,
        name: str = DEFAULT_NAME,
        identity: str | None = None,
        duration: float = 15.0,
        retry: float = 2.0,
        skew: float = 1.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.duration = duration
        self.retry = retry
        self.skew = skew
        self.wall = wall
        self._valid_until = 0.0
        self._task: asyncio.Task[None] | None = None
        self.transitions = 0
        # The holder named by the last Lease read, and when (monotonic) that read succeeded:
        # a standby that still reads the Lease is a healthy one (readiness).
        self.holder = ""
        self.observed_at: float | None = None

    def is_leader(self) -> bool:
        return time.monotonic() < self._valid_until

    def in_touch(self) -> bool:
        """True while the last successful read of the Lease is younger than its duration."""
        return self.observed_at is not None and time.monotonic() - self.observed_at < self.duration

    def _body(self, transitions: int, acquired: float, rv: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if rv is not None:
            meta["resourceVersion"] = rv
        now = self.wall()
        return {
            "apiVersion": API_VERSION,
            "kind": "Lease",
            "metadata": meta,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, int(self.duration)),
                "acquireTime": timeutil.micro_time(acquired),
                "renewTime": timeutil.micro_time(now),
                "leaseTransitions": transitions,
            },
        }

    async def try_acquire(self) -> bool:
        """One attempt to get or keep the lease; True when this replica holds it."""
        started = time.monotonic()
        try:
            res = await self.client.resource(API_VERSION, "Lease")
            current = await self.client.get_or_none(API_VERSION, "Lease", self.name, self.namespace)
            self.observed_at = time.monotonic()
            if current is None:
                await self.client.request(
                    "POST",
                    res.path(self.namespace),
                    body=self._body(0, self.wall(), None),
                    kind="Lease",
                )
            else:
                spec = current.get("spec") or {}
                rv = str((current.get("metadata") or {}).get("resourceVersion"))
                holder = spec.get("holderIdentity")
                transitions = int(spec.get("leaseTransitions") or 0)
                expires = contract.expires_at(
                    timeutil.parse_time(spec.get("renewTime")) or 0.0,
                    float(spec.get("leaseDurationSeconds") or 0),
                )
                if holder == self.identity:
                    acquired = timeutil.parse_time(spec.get("acquireTime")) or 0.0
                    body = self._body(transitions, acquired, rv)
                elif self.wall() >= expires or not holder:
                    body = self._body(transitions + 1, self.wall(), rv)
                else:
                    self.holder = str(holder)
                    self._valid_until = 0.0
                    return False
                # Compare-and-swap: the merge patch carries the resourceVersion read.
                await self.client.merge_patch(API_VERSION, "Lease", self.name, self.namespace, body)
                if holder != self.identity:
                    self.transitions += 1
                    logger.warning("%s now leads failover (was %s)", self.identity, holder)
        except kerrors.Conflict:
            self._valid_until = 0.0
            return False
        except kerrors.KubeError as exc:
            logger.warning("leader lease %s/%s: %s", self.namespace, self.name, exc)
            return self.is_leader()
        self.holder = self.identity
        self._valid_until = contract.valid_until(started, self.duration, self.skew)
        return True

    async def run(self) -> None:
        while True:
            try:
                await self.try_acquire()
            except Exception:
                logger.exception("leader election step failed")
                self._valid_until = 0.0
            await asyncio.sleep(self.retry)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def aclose(self, *, release: bool = True) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if release and self.is_leader():
            # Hand over at once: an expired renewTime lets the next replica take over.
            with contextlib.suppress(kerrors.KubeError):
                await self.client.merge_patch(
                    API_VERSION,
                    "Lease",
                    self.name,
                    self.namespace,
                    {"spec": {"renewTime": timeutil.micro_time(0), "holderIdentity": ""}},
                )
        self._valid_until = 0.0
