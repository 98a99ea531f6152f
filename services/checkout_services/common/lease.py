"""Write leases: one ``coordination.k8s.io/v1`` Lease per market, the fencing contract.

The contract (the operator, the services' write guard and the gateway all follow it):

* Where: the namespace of the fleet's CheckoutRegion objects on the management cluster
  (``CHECKOUT_LEASE_NAMESPACE``), one Lease per market named ``checkout-<fleet>-market-<mk>``
  (``mk`` = the market's ISO code in lower case, see :func:`lease_name`), labelled
  ``checkout-operator.io/fleet``, ``checkout-operator.io/market`` and
  ``app.kubernetes.io/managed-by: checkout-operator``.
* ``spec.holderIdentity``: the region that writes the market; ``spec.leaseTransitions``: the
  fencing epoch (1 at creation, + 1 on every change of writer, never reused);
  ``spec.leaseDurationSeconds``: the home region's ``spec.failover.writeLeaseSeconds``;
  ``spec.renewTime``: the holder's last renewal (MicroTime, UTC).
* Annotations: ``checkout-operator.io/state`` ``Serving`` or ``Fencing`` (a move is under way);
  ``checkout-operator.io/fencing-to`` the region being promoted;
  ``checkout-operator.io/fencing-reason``; ``checkout-operator.io/fenced-ack`` the epoch whose
  fencing the holder acknowledged (it stopped writing); ``checkout-operator.io/moved-at`` when
  the market last changed writer.
* Every change is a compare-and-swap: a JSON merge patch carrying the
  ``metadata.resourceVersion`` that was read (409 Conflict -> re-read, decide again).
* Who writes what: the operator creates the Lease, fences (state Fencing) and promotes (holder,
  epoch + 1, state Serving). The holder region alone renews ``renewTime`` while Serving, and on
  Fencing stops taking writes, waits for its in-flight writes, then writes ``fenced-ack``.
* A region may write a market only while it holds the lease for the current epoch, in state
  Serving, and its last successful renewal is younger than ``leaseDurationSeconds - skew``
  (measured on its own monotonic clock from *before* the renew request): a region that cannot
  renew stops writing before the operator may promote anyone else.

One region runs several keepers on the same Lease (orders, inventory and payments, each maybe
several pods). Each keeper records itself under its own annotation
``checkout-operator.io/keeper.<id>`` (``<id>``: service, pod, pid; see :func:`keeper_id`), a JSON
object ``{"region", "renewed", "stopped"}``: ``renewed`` is the wall time (UTC) of its last
successful patch, ``stopped`` the epoch at which it was fenced *and* its own in-flight writes
reached 0 (0: not stopped). Each keeper patches only its own key (CAS merge patch like any other
change) and removes keys older than ``STALE_FACTOR`` x the lease duration so the Lease does not
grow. The acknowledging keeper writes ``fenced-ack`` only when its own in-flight is 0 and every
*other* record of the holder region whose ``renewed`` is within ``leaseDurationSeconds + skew``
says ``stopped`` at the current epoch. Why the silent ones may be ignored: a keeper gains the
right to write only from a successful patch that also wrote its record, so its ``renewed`` is
never older than the start of that renewal; it stops writing by itself ``duration - skew`` after
that start (its own monotonic clock). When a record is older than ``duration + skew`` on the
acknowledging keeper's wall clock, its writer's right ran out at least ``2 x skew`` ago, which
covers a wall-clock disagreement of up to ``skew`` between the two pods. So a cut-off or dead
sibling delays the ack by at most the lease duration (no worse than the expiry path), and a live
sibling with writes in flight holds it back until those writes finish.

:class:`LeaseKeeper` is the services' side: it renews this region's leases, acknowledges
fencing, and answers ``may I write market M?`` for :mod:`checkout_services.common.write_guard`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hashlib
import itertools
import json
import logging
import os
import random
import re
import socket
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import httpx

from checkout_services.common import kubeconfig_policy

API_VERSION: Final = "coordination.k8s.io/v1"
PREFIX: Final = "checkout-operator.io/"
FLEET_LABEL: Final = PREFIX + "fleet"
MARKET_LABEL: Final = PREFIX + "market"
STATE: Final = PREFIX + "state"
FENCING_TO: Final = PREFIX + "fencing-to"
FENCING_REASON: Final = PREFIX + "fencing-reason"
FENCED_ACK: Final = PREFIX + "fenced-ack"
MOVED_AT: Final = PREFIX + "moved-at"
KEEPER: Final = PREFIX + "keeper."
STALE_FACTOR: Final = 10
"""Keeper records older than this many lease durations are removed (by any keeper)."""
NAMESPACE_ENV: Final = "CHECKOUT_LEASE_NAMESPACE"
KUBECONFIG_ENV: Final = "CHECKOUT_LEASE_KUBECONFIG"

LeaseState = Literal["Serving", "Fencing"]
log = logging.getLogger("checkout_services.common.lease")


def lease_name(fleet: str, market: str) -> str:
    return f"checkout-{fleet}-market-{market.lower()}"


def micro_time(at: float) -> str:
    """Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


_ID_BAD = re.compile(r"[^a-z0-9.-]+")
_ids = itertools.count(1)


def keeper_id(service: str, pod: str | None = None, pid: int | None = None) -> str:
    """This keeper's identity: ``<service>.<pod>.<pid>.<n>`` (``n`` counts the keepers of this
    process), made a valid annotation name part: ``keeper.<id>`` is at most 63 characters of
    ``[a-z0-9.-]`` starting and ending alphanumeric (a long one keeps a hash of the whole)."""
    pod = pod or os.environ.get("HOSTNAME") or socket.gethostname()
    raw = f"{service or 'keeper'}.{pod}.{os.getpid() if pid is None else pid}.{next(_ids)}"
    text = _ID_BAD.sub("-", raw.lower()).strip(".-") or "keeper"
    room = 63 - len("keeper.")
    if len(text) > room:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:10]
        text = text[: room - 11].rstrip(".-") + "-" + digest
    return text


@dataclass(frozen=True, slots=True)
class KeeperRecord:
    """One keeper's annotation on a Lease."""

    key: str
    region: str
    renewed: float
    stopped: int = 0

    @classmethod
    def parse(cls, key: str, value: str) -> KeeperRecord | None:
        try:
            doc = json.loads(value)
            return cls(
                key=key,
                region=str(doc.get("region") or ""),
                renewed=parse_time(doc.get("renewed")) or 0.0,
                stopped=int(doc.get("stopped") or 0),
            )
        except (ValueError, TypeError, AttributeError):
            return None

    def dump(self) -> str:
        doc = {"region": self.region, "renewed": micro_time(self.renewed), "stopped": self.stopped}
        return json.dumps(doc, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class WriteLease:
    """The parsed Lease of one market."""

    market: str
    holder: str
    epoch: int
    duration: float
    renewed_at: float
    state: LeaseState = "Serving"
    fencing_to: str = ""
    fencing_reason: str = ""
    acked_epoch: int = 0
    moved_at: float | None = None
    resource_version: str = ""
    keepers: Mapping[str, KeeperRecord | None] = field(default_factory=dict, compare=False)
    """Annotation key -> the keeper's record (None: unreadable)."""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> WriteLease:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        notes = meta.get("annotations") or {}
        labels = meta.get("labels") or {}
        state = notes.get(STATE, "Serving")
        try:
            acked = int(notes.get(FENCED_ACK, "0"))
        except ValueError:
            acked = 0
        return cls(
            market=str(labels.get(MARKET_LABEL, "")),
            holder=str(spec.get("holderIdentity") or ""),
            epoch=int(spec.get("leaseTransitions") or 0),
            duration=float(spec.get("leaseDurationSeconds") or 0),
            renewed_at=parse_time(spec.get("renewTime")) or 0.0,
            state="Fencing" if state == "Fencing" else "Serving",
            fencing_to=str(notes.get(FENCING_TO, "")),
            fencing_reason=str(notes.get(FENCING_REASON, "")),
            acked_epoch=acked,
            moved_at=parse_time(notes.get(MOVED_AT)),
            resource_version=str(meta.get("resourceVersion") or ""),
            keepers={
                k: KeeperRecord.parse(k, str(v)) for k, v in notes.items() if k.startswith(KEEPER)
            },
            raw=obj,
        )


def build(
    fleet: str,
    namespace: str,
    market: str,
    holder: str,
    epoch: int,
    duration: int,
    now: float,
    *,
    moved_at: float | None = None,
) -> dict[str, Any]:
    """A new (or promoted) Serving lease for ``holder`` at ``epoch``."""
    notes = {STATE: "Serving"}
    if moved_at is not None:
        notes[MOVED_AT] = micro_time(moved_at)
    return {
        "apiVersion": API_VERSION,
        "kind": "Lease",
        "metadata": {
            "name": lease_name(fleet, market),
            "namespace": namespace,
            "labels": {
                FLEET_LABEL: fleet,
                MARKET_LABEL: market,
                "app.kubernetes.io/managed-by": "checkout-operator",
            },
            "annotations": notes,
        },
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration,
            "acquireTime": micro_time(now),
            "renewTime": micro_time(now),
            "leaseTransitions": epoch,
        },
    }


# -- a minimal client of the lease store (the management kube-apiserver) ------------------------


class LeaseStoreError(Exception):
    """The lease store did not answer or refused (the message names the call)."""


class Conflict(LeaseStoreError):
    """Compare-and-swap lost: the Lease changed since it was read."""


@dataclass(frozen=True)
class StoreConfig:
    server: str
    namespace: str
    token: str = ""
    ca_pem: bytes = b""
    cert_pem: bytes = b""
    key_pem: bytes = b""

    @classmethod
    def from_kubeconfig(cls, path: str | Path, namespace: str) -> StoreConfig:
        """Read the current context of a kubeconfig: it comes from a Secret (the region's
        ``leaseKubeconfigSecretRef``), so it may carry only inline credentials and an https
        server (``kubeconfig_policy``; raises its ``NotAllowed`` naming the field)."""
        import yaml

        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        kubeconfig_policy.check(doc, KUBECONFIG_ENV)
        ctx_name = doc.get("current-context")
        ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in doc["users"] if u["name"] == ctx["user"])

        def blob(section: Mapping[str, Any], key: str) -> bytes:
            data = section.get(f"{key}-data")
            return base64.b64decode(data) if data else b""

        return cls(
            server=str(cluster["server"]),
            namespace=namespace,
            token=str(user.get("token") or ""),
            ca_pem=blob(cluster, "certificate-authority"),
            cert_pem=blob(user, "client-certificate"),
            key_pem=blob(user, "client-key"),
        )

    @classmethod
    def in_cluster(cls, namespace: str) -> StoreConfig:
        root = Path("/var/run/secrets/kubernetes.io/serviceaccount")
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        return cls(
            server=f"https://{host}:{port}",
            namespace=namespace,
            token=(root / "token").read_text().strip(),
            ca_pem=(root / "ca.crt").read_bytes(),
        )

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cadata=self.ca_pem.decode() if self.ca_pem else None)
        if self.cert_pem:
            with tempfile.TemporaryDirectory() as tmp:
                cert, key = Path(tmp, "c.pem"), Path(tmp, "k.pem")
                cert.write_bytes(self.cert_pem)
                key.write_bytes(self.key_pem)
                ctx.load_cert_chain(cert, key)
        return ctx


class LeaseStore:
    """List and compare-and-swap the market Leases of one namespace."""

    def __init__(self, config: StoreConfig, *, timeout: float = 2.0) -> None:
        self.config = config
        headers = {"Accept": "application/json"}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self._http = httpx.AsyncClient(
            base_url=config.server,
            verify=config.ssl_context(),
            headers=headers,
            timeout=httpx.Timeout(timeout),
            trust_env=False,
        )
        self._path = f"/apis/{API_VERSION}/namespaces/{config.namespace}/leases"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise LeaseStoreError(f"{method} {path}: {type(exc).__name__}") from None
        if response.status_code == 409:
            raise Conflict(f"{method} {path}: conflict")
        if response.status_code >= 400:
            raise LeaseStoreError(f"{method} {path}: HTTP {response.status_code}")
        return response.json()

    async def list(self, fleet: str) -> list[WriteLease]:
        body = await self._call(
            "GET", self._path, params={"labelSelector": f"{FLEET_LABEL}={fleet}"}
        )
        return [WriteLease.parse(item) for item in body.get("items") or ()]

    async def get(self, name: str) -> WriteLease:
        """One Lease by name (re-read after a lost compare-and-swap)."""
        return WriteLease.parse(await self._call("GET", f"{self._path}/{name}"))

    async def watch(self, fleet: str, *, timeout_seconds: int = 60) -> AsyncIterator[WriteLease]:
        """The fleet's Leases as they change (a ``?watch=1`` from now on), until the server ends
        the watch after ``timeout_seconds``. Needs the ``watch`` verb on leases."""
        params = {
            "labelSelector": f"{FLEET_LABEL}={fleet}",
            "watch": "1",
            "timeoutSeconds": str(timeout_seconds),
        }
        try:
            async with self._http.stream(
                "GET",
                self._path,
                params=params,
                timeout=httpx.Timeout(timeout_seconds + 10.0, connect=5.0),
            ) as response:
                if response.status_code >= 400:
                    raise LeaseStoreError(f"WATCH {self._path}: HTTP {response.status_code}")
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        return
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        yield WriteLease.parse(event.get("object") or {})
        except httpx.HTTPError as exc:
            raise LeaseStoreError(f"WATCH {self._path}: {type(exc).__name__}") from None
        except ValueError:
            raise LeaseStoreError(f"WATCH {self._path}: unreadable event") from None

    async def replace(self, obj: Mapping[str, Any]) -> WriteLease:
        """Write ``obj`` (which carries the resourceVersion it was read at): compare-and-swap,
        as a JSON merge patch (verb ``patch``) whose resourceVersion the server checks."""
        meta = obj["metadata"]
        patch = {
            "metadata": {
                "resourceVersion": meta["resourceVersion"],
                "annotations": meta.get("annotations") or {},
            },
            "spec": obj["spec"],
        }
        body = await self._call(
            "PATCH",
            f"{self._path}/{meta['name']}",
            content=json.dumps(patch),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        return WriteLease.parse(body)


# -- the holder's side ------------------------------------------------------------------------


@dataclass
class Held:
    epoch: int
    valid_until: float
    """``time.monotonic()`` after which this region must not write (renewal start + duration -
    skew)."""
    fenced: bool = False


class LeaseLost(Exception):
    """This region may not write the market (now); ``writer`` is who does, if known."""

    def __init__(self, message: str, *, market: str, writer: str, epoch: int) -> None:
        super().__init__(message)
        self.market = market
        self.writer = writer
        self.epoch = epoch


class LeaseKeeper:
    """Renews this region's market leases and acknowledges their fencing.

    It renews every ``interval`` seconds (default a quarter of the shortest lease) and, with
    ``watch`` on (the default), also reacts at once when one of its leases is fenced, promoted
    to it or handed to another region (a watch on the fleet's Leases; renewals of other
    regions do not wake it). Without the ``watch`` verb it polls only.
    """

    def __init__(
        self,
        region: str,
        fleet: str,
        store: LeaseStore,
        *,
        skew: float = 1.0,
        interval: float | None = None,
        in_flight: Callable[[str], int] = lambda market: 0,
        acknowledge: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        watch: bool = True,
        service: str = "",
        identity: str | None = None,
        conflict_retries: int = 5,
    ) -> None:
        self.region = region
        self.identity = identity or keeper_id(service)
        """This keeper's annotation is ``checkout-operator.io/keeper.<identity>``."""
        self.key = KEEPER + self.identity
        self.conflict_retries = conflict_retries
        self.conflicts = 0
        self.fleet = fleet
        self.store = store
        self.skew = skew
        self.interval = interval
        self.in_flight = in_flight
        self.acknowledge = acknowledge
        """False: this keeper stops writing on Fencing but leaves the ``fenced-ack`` to the
        region's acknowledging keeper (several services of a region keep the same leases)."""
        self.clock = clock
        self.wall = wall
        self.held: dict[str, Held] = {}
        self.seen: dict[str, WriteLease] = {}
        self.renewals = 0
        self.errors = 0
        self.watch = watch
        self.wakeups = 0
        self._task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def may_write(self, market: str) -> bool:
        held = self.held.get(market)
        return held is not None and not held.fenced and self.clock() < held.valid_until

    def check(self, market: str) -> int:
        """The epoch this region holds for ``market``; raises :class:`LeaseLost` otherwise."""
        held = self.held.get(market)
        if held is not None and not held.fenced and self.clock() < held.valid_until:
            return held.epoch
        seen = self.seen.get(market)
        writer = (
            seen.fencing_to if seen and seen.state == "Fencing" else (seen.holder if seen else "")
        )
        epoch = seen.epoch if seen else 0
        if held is not None and held.fenced:
            to = writer or "another region"
            why = f"market {market} is being fenced away from {self.region} (to {to})"
        elif held is not None:
            why = f"region {self.region} could not renew its write lease for market {market}"
        else:
            why = (
                f"region {self.region} holds no write lease for market {market}; "
                f"its writer is {writer or 'unknown'} (epoch {epoch})"
            )
        raise LeaseLost(why, market=market, writer=writer, epoch=epoch)

    async def step(self) -> None:
        """One pass: renew what this region holds, acknowledge fencing, forget what it lost."""
        started = self.clock()
        try:
            leases = await self.store.list(self.fleet)
        except LeaseStoreError as exc:
            self.errors += 1
            log.warning("lease store unreachable: %s (writes stop when the leases run out)", exc)
            return
        self.seen = {lease.market: lease for lease in leases}
        for lease in leases:
            if lease.holder != self.region:
                self.held.pop(lease.market, None)
                continue
            await self._keep_retrying(lease, started)

    async def _keep_retrying(self, lease: WriteLease, started: float) -> None:
        """``_keep``, re-reading and deciding again after a lost compare-and-swap: the region's
        other keepers patch the same Lease, and losing a race to them must not stop writes.
        ``started`` stays the time before the first read (the conservative start)."""
        name = str((lease.raw.get("metadata") or {}).get("name") or "")
        for _ in range(self.conflict_retries + 1):
            try:
                await self._keep(lease, started)
                return
            except Conflict:
                self.conflicts += 1
            if not name:
                return
            await asyncio.sleep(0.01 + 0.04 * random.random())  # let the sibling's patch land
            try:
                lease = await self.store.get(name)
            except LeaseStoreError as exc:
                self.errors += 1
                log.warning("re-reading %s after a conflict failed: %s", name, exc)
                return
            self.seen[lease.market] = lease
            if lease.holder != self.region:
                self.held.pop(lease.market, None)
                return
        log.info("lease %s: still conflicting after %d retries", name, self.conflict_retries)

    def _record(self, lease: WriteLease, now: float, stopped: int) -> dict[str, str | None]:
        """The annotations this keeper patches: its own record, and removal of stale ones."""
        notes: dict[str, str | None] = {
            self.key: KeeperRecord(self.key, self.region, now, stopped).dump()
        }
        horizon = now - STALE_FACTOR * max(lease.duration, 1.0)
        for key, rec in lease.keepers.items():
            if key != self.key and (rec is None or rec.renewed < horizon):
                notes[key] = None  # merge patch: remove
        return notes

    def siblings_busy(self, lease: WriteLease, now: float | None = None) -> list[str]:
        """The other keepers of the holder region that were heard from within ``duration +
        skew`` and have not recorded that they stopped at the lease's epoch (they block the
        ``fenced-ack``)."""
        now = self.wall() if now is None else now
        recent = now - lease.duration - self.skew
        return sorted(
            key
            for key, rec in lease.keepers.items()
            if key != self.key
            and rec is not None
            and rec.region == lease.holder
            and rec.renewed >= recent
            and rec.stopped != lease.epoch
        )

    async def _patch(self, lease: WriteLease, notes: dict[str, str | None], renew: bool) -> Any:
        obj = json.loads(json.dumps(lease.raw))
        # only what this keeper changes (its keys, maybe renewTime), at the read resourceVersion
        obj["metadata"]["annotations"] = notes
        if renew:
            obj["spec"] = {"renewTime": micro_time(self.wall())}
        else:
            obj["spec"] = {}
        return await self.store.replace(obj)

    async def _keep(self, lease: WriteLease, started: float) -> None:
        held = self.held.get(lease.market)
        if held is not None and held.epoch != lease.epoch:
            held = None
        now = self.wall()
        if lease.state == "Fencing":
            # Stop taking writes first; record "stopped" once the in-flight ones are done, and
            # acknowledge (one keeper per region) when every live sibling did too. While some
            # are still in flight, keep renewing: they finish under a valid lease, and the
            # operator waits for the acknowledgement instead of the expiry.
            if held is None:
                held = self.held[lease.market] = Held(lease.epoch, 0.0, fenced=True)
            held.fenced = True
            if lease.acked_epoch == lease.epoch:
                return
            busy = self.in_flight(lease.market)
            mine = lease.keepers.get(self.key)
            notes = self._record(lease, now, 0 if busy else lease.epoch)
            ack = not busy and self.acknowledge and not self.siblings_busy(lease, now)
            if ack:
                notes[FENCED_ACK] = str(lease.epoch)
            elif not busy and mine is not None and mine.stopped == lease.epoch:
                return  # already said so; waiting for the siblings (or for nothing)
            try:
                self.seen[lease.market] = await self._patch(lease, notes, renew=bool(busy))
            except Conflict:
                raise
            except LeaseStoreError as exc:
                self.errors += 1
                log.warning("fencing ack of %s failed: %s", lease.market, exc)
            return
        try:
            renewed = await self._patch(lease, self._record(lease, now, 0), renew=True)
        except Conflict:
            raise
        except LeaseStoreError as exc:
            self.errors += 1
            log.warning("renewal of %s failed: %s", lease.market, exc)
            return
        self.renewals += 1
        self.seen[lease.market] = renewed
        self.held[lease.market] = Held(lease.epoch, started + renewed.duration - self.skew)

    def _concerns_me(self, lease: WriteLease) -> bool:
        """A change this region must act on now: its lease fenced (acknowledge), a lease
        promoted to it (start writing), or a lease it held gone to another region (stop)."""
        held = self.held.get(lease.market)
        if lease.holder != self.region:
            if held is not None:
                self.held.pop(lease.market, None)  # stop writing at once
                self.seen[lease.market] = lease
                return True
            return False
        if lease.state == "Fencing":
            # Only the first sight of the fencing: while in-flight writes finish, the keeper's
            # own renewals would wake it again and again (the acknowledgement then follows at
            # the next interval).
            if lease.acked_epoch == lease.epoch:
                return False
            if held is None or not held.fenced or held.epoch != lease.epoch:
                return True
            # the last sibling just recorded that it stopped: acknowledge now, not next interval
            return (
                self.acknowledge
                and not self.in_flight(lease.market)
                and not self.siblings_busy(lease)
            )
        return held is None or held.epoch != lease.epoch or held.fenced

    async def _watch_loop(self) -> None:
        failures = 0
        while True:
            try:
                async for lease in self.store.watch(self.fleet):
                    failures = 0
                    if lease.market and self._concerns_me(lease):
                        self.wakeups += 1
                        self._wake.set()
            except LeaseStoreError as exc:
                failures += 1
                log.debug("lease watch ended: %s (polling meanwhile)", exc)
                await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))

    async def run(self) -> None:
        if self.watch and self._watch_task is None:
            self._watch_task = asyncio.get_running_loop().create_task(self._watch_loop())
        while True:
            self._wake.clear()
            await self.step()
            interval = self.interval
            if interval is None:
                durations = [s.duration for s in self.seen.values() if s.duration > 0]
                interval = max(0.2, min(durations, default=15.0) / 4)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def aclose(self) -> None:
        for task in (self._task, self._watch_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = None
        self._watch_task = None


def keeper_from_env(region: str, fleet: str, *, service: str = "") -> LeaseKeeper | None:
    """A keeper configured from ``CHECKOUT_LEASE_NAMESPACE`` (unset: None, no lease check) and
    ``CHECKOUT_LEASE_KUBECONFIG`` (a kubeconfig for the management cluster; unset: the pod's
    service account). Call ``start()`` in the app's lifespan and ``aclose()`` at its end."""
    namespace = os.environ.get(NAMESPACE_ENV)
    if not namespace:
        return None
    path = os.environ.get(KUBECONFIG_ENV)
    config = (
        StoreConfig.from_kubeconfig(path, namespace) if path else StoreConfig.in_cluster(namespace)
    )
    return LeaseKeeper(region, fleet, LeaseStore(config), service=service)
