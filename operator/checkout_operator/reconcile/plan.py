"""The diff between the rendered (desired) children and the live ones: what to apply, what to prune.

Pure: no cluster, no clock. A desired object is applied when it is missing, when its spec-hash
annotation differs from the live one, or when a field the operator sets was changed by hand
(drift): every field of the desired object must be present, equal, in the live one (the
apiserver's defaults may add fields; quantities compare by value, ``500m`` == ``0.5``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

SPEC_HASH_ANNOTATION: Final = "checkout-operator.io/spec-hash"

Obj = Mapping[str, Any]
Reason = Literal["missing", "spec-hash", "drift"]


@dataclass(frozen=True, order=True)
class Key:
    """Identity of an object across API versions: group, kind, namespace, name."""

    group: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


def key_of(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return Key(group, str(obj.get("kind", "")), str(meta.get("namespace") or ""), str(meta["name"]))


@dataclass(frozen=True)
class Apply:
    obj: Obj
    reason: Reason
    detail: str = ""
    """For drift: the path of the first field that differs, e.g. ``spec.replicas``."""


@dataclass(frozen=True)
class Plan:
    apply: tuple[Apply, ...] = ()
    prune: tuple[Obj, ...] = ()
    """Live objects to delete (their apiVersion, kind, metadata are used)."""
    in_sync: tuple[Obj, ...] = ()
    """Live objects that match their desired state (their live form, for the health rollup)."""

    @property
    def empty(self) -> bool:
        return not self.apply and not self.prune


# -- quantities ------------------------------------------------------------------------------

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[numkMGTPE]i?|Ki|)$")
_SUFFIX: Final[Mapping[str, Decimal]] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def parse_quantity(text: str) -> Decimal | None:
    """The value of a Kubernetes quantity (``500m``, ``1Gi``, ``1e3``), or None if it is not one."""
    m = _QUANTITY.match(text.strip())
    if not m:
        return None
    number, suffix = m.groups()
    try:
        value = Decimal(number)
        if suffix[:1] in ("e", "E"):
            return value * (Decimal(10) ** int(suffix[1:]))
        return value * _SUFFIX[suffix]
    except (InvalidOperation, KeyError, ValueError):
        return None


# -- containment -----------------------------------------------------------------------------


def _empty(value: Any) -> bool:
    return value is None or value == {} or value == [] or value == ""


def first_difference(live: Any, desired: Any, path: str = "") -> str | None:
    """The path of the first desired field that the live value lacks or contradicts, or None.

    Maps: every desired key must match (null/empty desired values may be absent live).
    Lists: same length, element by element. Scalars: equal; numeric strings that are
    quantities compare by value; ``True`` is not ``1``.
    """
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return None if _empty(desired) and _empty(live) else (path or ".")
        for k, v in desired.items():
            sub = f"{path}.{k}" if path else str(k)
            if k not in live:
                if _empty(v):
                    continue
                return sub
            diff = first_difference(live[k], v, sub)
            if diff is not None:
                return diff
        return None
    if isinstance(desired, Sequence) and not isinstance(desired, str):
        if not isinstance(live, Sequence) or isinstance(live, str):
            return None if _empty(desired) and _empty(live) else (path or ".")
        if len(live) != len(desired):
            return path or "."
        for i, (lv, dv) in enumerate(zip(live, desired, strict=True)):
            diff = first_difference(lv, dv, f"{path}[{i}]")
            if diff is not None:
                return diff
        return None
    if isinstance(desired, bool) or isinstance(live, bool):
        return None if desired is live else (path or ".")
    if isinstance(desired, int | float) and isinstance(live, int | float):
        return None if desired == live else (path or ".")
    if desired == live:
        return None
    if isinstance(desired, str) and isinstance(live, str):
        dq, lq = parse_quantity(desired), parse_quantity(live)
        if dq is not None and dq == lq:
            return None
    if desired is None:
        return None
    return path or "."


def drift(live: Obj, desired: Obj) -> str | None:
    """Where ``live`` differs from ``desired`` in the fields the operator sets, or None.

    Compared: every top-level field except ``metadata`` and ``status``, plus the desired
    labels and annotations (other metadata is the server's).
    """
    for k, v in desired.items():
        if k in ("metadata", "status", "apiVersion", "kind"):
            continue
        diff = first_difference(live.get(k), v, k)
        if diff is not None:
            return diff
    dmeta = desired.get("metadata") or {}
    lmeta = live.get("metadata") or {}
    for part in ("labels", "annotations"):
        diff = first_difference(lmeta.get(part) or {}, dmeta.get(part) or {}, f"metadata.{part}")
        if diff is not None:
            return diff
    return None


def spec_hash_of(obj: Obj) -> str | None:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(SPEC_HASH_ANNOTATION)
    return str(value) if value is not None else None


KIND_ORDER: Final[Mapping[str, int]] = {
    kind: i
    for i, kinds in enumerate(
        (
            ("Namespace",),
            ("NetworkPolicy",),
            ("ServiceAccount",),
            ("Role", "RoleBinding"),
            ("Secret",),
            ("ConfigMap",),
            ("PodDisruptionBudget",),
            ("Service", "Deployment"),
            ("HorizontalPodAutoscaler",),
        )
    )
    for kind in kinds
}
"""Apply order (as Helm installs): what a Deployment's pods need (service account, config,
network policy) exists before them; kinds not listed (custom resources) come last. Prunes go
in the reverse order. Services and Deployments go together: pods do not need their Service,
and the apiserver allocates ClusterIPs one at a time (measured ~1 s each on a loaded control
plane), which would hold every region's Deployments back behind all those Services."""


def apply_rank(obj: Obj) -> int:
    return KIND_ORDER.get(str(obj.get("kind", "")), len(KIND_ORDER))


def plan(desired: Iterable[Obj], live: Iterable[Obj]) -> Plan:
    """What to apply (missing, spec-hash changed, drifted) and prune (live, no longer desired).

    ``live`` must hold only this region's children (found by its labels). Order: applies by
    ``KIND_ORDER`` (stable: desired order within a kind); prunes in the reverse kind order, then
    by key; in-sync objects by key.
    """
    live_by_key: dict[Key, Obj] = {}
    for obj in live:
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            continue  # already going away; a desired one is re-created after it is gone
        live_by_key[key_of(obj)] = obj
    applies: list[Apply] = []
    in_sync: list[Obj] = []
    seen: set[Key] = set()
    for obj in desired:
        k = key_of(obj)
        seen.add(k)
        current = live_by_key.get(k)
        if current is None:
            applies.append(Apply(obj, "missing"))
        elif spec_hash_of(current) != spec_hash_of(obj):
            applies.append(Apply(obj, "spec-hash"))
        else:
            where = drift(current, obj)
            if where is not None:
                applies.append(Apply(obj, "drift", where))
            else:
                in_sync.append(current)
    prune = [live_by_key[k] for k in sorted(live_by_key) if k not in seen]
    prune.sort(key=lambda o: -apply_rank(o))
    applies.sort(key=lambda a: apply_rank(a.obj))
    in_sync.sort(key=key_of)
    return Plan(tuple(applies), tuple(prune), tuple(in_sync))


@dataclass(frozen=True)
class Owner:
    """The CheckoutRegion that owns the children (same cluster, same namespace only)."""

    api_version: str
    kind: str
    name: str
    uid: str
    namespace: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def with_owner(obj: Obj, owner: Owner | None) -> dict[str, Any]:
    """``obj`` with an owner reference to ``owner`` if it can carry one (same namespace).

    A namespaced owner can own only objects of its own namespace; cross-namespace and
    cross-cluster children get none (the finalizer cleans them up instead).
    """
    out = dict(obj)
    if owner is None:
        return out
    meta = dict(out.get("metadata") or {})
    if meta.get("namespace") != owner.namespace:
        return out
    refs = [r for r in meta.get("ownerReferences") or () if r.get("uid") != owner.uid]
    meta["ownerReferences"] = [*refs, owner.reference()]
    out["metadata"] = meta
    return out


@dataclass(frozen=True)
class Inventory:
    """Which kinds to look for live children of, in which namespace, with which labels."""

    namespace: str
    labels: Mapping[str, str]
    kinds: tuple[tuple[str, str], ...] = field(default=())
    """(apiVersion, kind) pairs."""


def child_kinds(
    desired: Iterable[Obj], known: Iterable[tuple[str, str]]
) -> tuple[tuple[str, str], ...]:
    """The kinds to list for pruning: every kind the render can produce plus those it did now.

    One apiVersion per (group, kind): the desired one wins over the known default.
    """
    by_gk: dict[tuple[str, str], str] = {}
    for api_version, kind in known:
        by_gk[(api_version.rpartition("/")[0], kind)] = api_version
    for obj in desired:
        api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
        by_gk[(api_version.rpartition("/")[0], kind)] = api_version
    return tuple(sorted((v, gk[1]) for gk, v in by_gk.items()))
