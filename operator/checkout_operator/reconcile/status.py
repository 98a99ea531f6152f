"""Status of a CheckoutRegion, computed from the reconcile's outcome and the children. Pure.

Conditions follow the Kubernetes conventions: ``type``, ``status``, ``reason`` (CamelCase),
``message``, ``lastTransitionTime`` (changes only when ``status`` changes) and
``observedGeneration``. Condition types this module does not own (e.g. the failover ones) are
kept as they are. Only the keys in ``OWNED_KEYS`` are written, so a status patch never clobbers
what another part of the operator records.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from checkout_contract.timeutil import rfc3339

READY: Final = "Ready"
PROGRESSING: Final = "Progressing"
DEGRADED: Final = "Degraded"
OWNED_CONDITIONS: Final = (READY, PROGRESSING, DEGRADED)
OWNED_KEYS: Final = ("observedGeneration", "phase", "conditions", "children", "regions")

Status = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class ChildHealth:
    kind: str
    name: str
    ready: bool
    workload: bool
    """Only workloads (Deployments, MirrorMaker 2) count for readiness."""
    message: str = ""

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def child_health(obj: Mapping[str, Any]) -> ChildHealth:
    """Whether a live child is ready.

    Deployment: the controller saw the current generation, and updated and available replicas
    reach ``spec.replicas``. Strimzi KafkaMirrorMaker2: condition Ready=True for the current
    generation. Anything else is ready once it exists.
    """
    kind = str(obj.get("kind", ""))
    meta = obj.get("metadata") or {}
    name = str(meta.get("name", ""))
    spec = obj.get("spec") or {}
    st = obj.get("status") or {}
    generation = _int(meta.get("generation"), 0)
    observed = _int(st.get("observedGeneration"), 0)
    if kind == "Deployment":
        want = _int(spec.get("replicas"), 1)
        available = _int(st.get("availableReplicas"))
        updated = _int(st.get("updatedReplicas"))
        if observed < generation:
            return ChildHealth(kind, name, False, True, "rollout not observed yet")
        if updated < want:
            return ChildHealth(kind, name, False, True, f"{updated}/{want} replicas updated")
        if available < want:
            return ChildHealth(kind, name, False, True, f"{available}/{want} replicas available")
        return ChildHealth(kind, name, True, True)
    if kind == "KafkaMirrorMaker2":
        if observed < generation:
            return ChildHealth(kind, name, False, True, "not observed yet")
        for cond in st.get("conditions") or ():
            if cond.get("type") == "Ready":
                ok = cond.get("status") == "True"
                return ChildHealth(kind, name, ok, True, "" if ok else str(cond.get("message", "")))
        return ChildHealth(kind, name, False, True, "no Ready condition yet")
    return ChildHealth(kind, name, True, False)


@dataclass(frozen=True)
class Outcome:
    """What the reconcile achieved, as input to the status."""

    generation: int
    desired: int = 0
    in_sync: int = 0
    """Desired objects that exist and match (after this reconcile's applies)."""
    children: tuple[ChildHealth, ...] = ()
    error_reason: str = ""
    """Empty on success; else a CamelCase reason (``InvalidSpec``, ``ApplyFailed``, ...)."""
    error_message: str = ""
    permanent: bool = False
    """True for a bad spec (nothing applied, no retry until the spec changes)."""


def condition(
    previous: Iterable[Mapping[str, Any]],
    type_: str,
    status: Status,
    reason: str,
    message: str,
    generation: int,
    now: datetime.datetime,
) -> dict[str, Any]:
    """A condition; its lastTransitionTime is the previous one's when the status is unchanged."""
    last = rfc3339(now)
    for cond in previous:
        if cond.get("type") == type_ and cond.get("status") == status:
            last = str(cond.get("lastTransitionTime") or last)
            break
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": last,
        "observedGeneration": generation,
    }


def _not_ready_message(not_ready: Sequence[ChildHealth], workloads: int) -> str:
    parts = [f"{c.ref} ({c.message})" if c.message else c.ref for c in not_ready]
    return f"{len(not_ready)}/{workloads} workloads not ready: " + ", ".join(parts)


def compute(
    outcome: Outcome, previous: Mapping[str, Any] | None, now: datetime.datetime
) -> dict[str, Any]:
    """The owned part of the new status (``OWNED_KEYS``), given the previous status."""
    prev = previous or {}
    prev_conditions: list[Mapping[str, Any]] = list(prev.get("conditions") or ())
    gen = outcome.generation
    workloads = [c for c in outcome.children if c.workload]
    not_ready = sorted((c for c in workloads if not c.ready), key=lambda c: c.ref)
    ready_count = len(workloads) - len(not_ready)

    def cond(type_: str, status: Status, reason: str, message: str) -> dict[str, Any]:
        return condition(prev_conditions, type_, status, reason, message, gen, now)

    if outcome.error_reason:
        phase = "Degraded"
        owned = [
            cond(READY, "False", outcome.error_reason, outcome.error_message),
            cond(
                PROGRESSING,
                "False" if outcome.permanent else "True",
                outcome.error_reason,
                "waiting for a spec change" if outcome.permanent else "retrying",
            ),
            cond(DEGRADED, "True", outcome.error_reason, outcome.error_message),
        ]
    elif not_ready:
        phase = "Progressing"
        message = _not_ready_message(not_ready, len(workloads))
        owned = [
            cond(READY, "False", "ChildrenNotReady", message),
            cond(PROGRESSING, "True", "RollingOut", message),
            cond(DEGRADED, "False", "AsExpected", ""),
        ]
    else:
        phase = "Ready"
        message = f"{outcome.in_sync} objects applied, {ready_count} workloads ready"
        owned = [
            cond(READY, "True", "Reconciled", message),
            cond(PROGRESSING, "False", "ReconcileComplete", ""),
            cond(DEGRADED, "False", "AsExpected", ""),
        ]
    others = [dict(c) for c in prev_conditions if c.get("type") not in OWNED_CONDITIONS]
    return {
        "observedGeneration": gen,
        "phase": phase,
        "conditions": owned + others,
        "children": {
            "desired": outcome.desired,
            "applied": outcome.in_sync,
            "ready": ready_count,
            "notReady": [c.ref for c in not_ready],
        },
    }


def changed(previous: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether writing ``new`` would change any owned key of ``previous``."""
    prev = previous or {}
    return any(prev.get(k) != new.get(k) for k in OWNED_KEYS if k in new)


def degraded_transition(previous: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether ``new`` newly reports Degraded=True or a new Degraded message (-> one Event)."""

    def find(st: Mapping[str, Any] | None) -> Mapping[str, Any]:
        for c in (st or {}).get("conditions") or ():
            if c.get("type") == DEGRADED:
                return c  # type: ignore[no-any-return]
        return {}

    old, cur = find(previous), find(new)
    if cur.get("status") != "True":
        return False
    return bool(old.get("status") != "True" or old.get("message") != cur.get("message"))


def route_status(
    generation: int,
    previous: Mapping[str, Any] | None,
    regions: Sequence[str],
    now: datetime.datetime,
    error: str = "",
) -> dict[str, Any]:
    """Owned part of a PSPRoute status: Ready (used by ``regions``) or Degraded (``error``)."""
    prev_conditions: list[Mapping[str, Any]] = list((previous or {}).get("conditions") or ())

    def cond(type_: str, st: Status, reason: str, message: str) -> dict[str, Any]:
        return condition(prev_conditions, type_, st, reason, message, generation, now)

    if error:
        conditions = [
            cond(READY, "False", "InvalidSpec", error),
            cond(DEGRADED, "True", "InvalidSpec", error),
        ]
        phase = "Degraded"
    else:
        used = ", ".join(regions) if regions else "no region yet"
        conditions = [
            cond(READY, "True", "Routed", f"used by {used}"),
            cond(DEGRADED, "False", "AsExpected", ""),
        ]
        phase = "Ready"
    others = [dict(c) for c in prev_conditions if c.get("type") not in OWNED_CONDITIONS]
    return {
        "observedGeneration": generation,
        "phase": phase,
        "conditions": conditions + others,
        "regions": list(regions),
    }
