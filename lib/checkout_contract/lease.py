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

The expiry arithmetic (``renewTime + leaseDurationSeconds``) is :func:`expires_at`, used by every
reader (the operator's failover, the gateway's lease view, the services' keeper).

Pure: no client, no network. The services' keeper is ``checkout_services.common.lease``; the
operator's side is ``checkout_operator.reconcile.leases``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from checkout_contract.timeutil import micro_time, parse_time

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

LeaseState = Literal["Serving", "Fencing"]


class LeaseFormatError(ValueError):
    """A Lease whose fields do not parse (the message names the field, never a value)."""


def lease_name(fleet: str, market: str) -> str:
    return f"checkout-{fleet}-market-{market.lower()}"


def expires_at(renewed_at: float, duration: float) -> float:
    """When a lease renewed at ``renewed_at`` (epoch seconds) for ``duration`` seconds runs out:
    the one place of ``renewTime + leaseDurationSeconds``."""
    return renewed_at + duration


def valid_until(renew_started: float, duration: float, skew: float) -> float:
    """Until when (on the holder's own monotonic clock) a holder may write after a successful
    renewal that started at ``renew_started``: the expiry minus the allowed clock skew."""
    return expires_at(renew_started, duration) - skew


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

    @property
    def expires_at(self) -> float:
        """Wall time (epoch seconds) at which the holder's last renewal runs out."""
        return expires_at(self.renewed_at, self.duration)

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

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
        try:
            return cls._parse(obj, meta, spec, notes, labels, state, acked)
        except (TypeError, ValueError, AttributeError) as exc:
            name = meta.get("name") if isinstance(meta, Mapping) else None
            raise LeaseFormatError(
                f"Lease {name or '(unnamed)'}: unreadable spec or annotations ({exc})"
            ) from exc

    @classmethod
    def _parse(
        cls,
        obj: Mapping[str, Any],
        meta: Mapping[str, Any],
        spec: Mapping[str, Any],
        notes: Mapping[str, Any],
        labels: Mapping[str, Any],
        state: str,
        acked: int,
    ) -> WriteLease:
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
