"""The holder's side of a market write lease, pure: who a keeper is (:func:`keeper_id`), what it
holds (:class:`Held`), why it may not write (:class:`LeaseLost`, :func:`lost`), the annotations
it records on a Lease (:func:`keeper_notes`) and which of its siblings still block the
``fenced-ack`` (:func:`siblings_busy`). :class:`checkout_services.common.lease.LeaseKeeper`
does the I/O around them.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import socket
from dataclasses import dataclass

from checkout_contract.lease import STALE_FACTOR, KeeperRecord, WriteLease

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


def lost(region: str, market: str, held: Held | None, seen: WriteLease | None) -> LeaseLost:
    """Why ``region`` may not write ``market`` now, naming the region that does (if known)."""
    writer = seen.fencing_to if seen and seen.state == "Fencing" else (seen.holder if seen else "")
    epoch = seen.epoch if seen else 0
    if held is not None and held.fenced:
        to = writer or "another region"
        why = f"market {market} is being fenced away from {region} (to {to})"
    elif held is not None:
        why = f"region {region} could not renew its write lease for market {market}"
    else:
        why = (
            f"region {region} holds no write lease for market {market}; "
            f"its writer is {writer or 'unknown'} (epoch {epoch})"
        )
    return LeaseLost(why, market=market, writer=writer, epoch=epoch)


def version(lease: WriteLease) -> int:
    """The Lease's resourceVersion as a number (etcd's revision; 0 if it is not one)."""
    raw = lease.resource_version
    return int(raw) if raw.isdigit() else 0


def keeper_notes(
    lease: WriteLease, key: str, region: str, now: float, stopped: int
) -> dict[str, str | None]:
    """The annotations the keeper ``key`` patches: its own record, and removal (``None`` in a
    merge patch) of the records not renewed within ``STALE_FACTOR`` lease durations."""
    notes: dict[str, str | None] = {key: KeeperRecord(key, region, now, stopped).dump()}
    horizon = now - STALE_FACTOR * max(lease.duration, 1.0)
    for other, rec in lease.keepers.items():
        if other != key and (rec is None or rec.renewed < horizon):
            notes[other] = None
    return notes


def siblings_busy(lease: WriteLease, key: str, now: float, skew: float) -> list[str]:
    """The keepers other than ``key`` of the holder region that were heard from within
    ``duration + skew`` and have not recorded that they stopped at the lease's epoch (they block
    the ``fenced-ack``)."""
    recent = now - lease.duration - skew
    return sorted(
        other
        for other, rec in lease.keepers.items()
        if other != key
        and rec is not None
        and rec.region == lease.holder
        and rec.renewed >= recent
        and rec.stopped != lease.epoch
    )
