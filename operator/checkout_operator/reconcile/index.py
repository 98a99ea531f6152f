"""Which CheckoutRegions a PSPRoute selects, and so which regions a PSPRoute change affects. Pure.

A PSPRoute applies to the CheckoutRegions of its own namespace whose region name
(``spec.region``, else ``metadata.name``) is in ``spec.regions``; an empty list means every
region of the namespace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Obj = Mapping[str, Any]


@dataclass(frozen=True, order=True)
class Ref:
    """A namespaced object: namespace and name."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def ref(obj: Obj) -> Ref:
    meta = obj.get("metadata") or {}
    return Ref(str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def region_name(region: Obj) -> str:
    spec = region.get("spec") or {}
    return str(spec.get("region") or (region.get("metadata") or {}).get("name") or "")


def selects(route: Obj | None, region: Obj) -> bool:
    if not route:
        return False
    if ref(route).namespace != ref(region).namespace:
        return False
    wanted = (route.get("spec") or {}).get("regions") or ()
    return not wanted or region_name(region) in wanted


def regions_selected(route: Obj | None, regions: Iterable[Obj]) -> list[Ref]:
    """The CheckoutRegions ``route`` selects, sorted."""
    return sorted(ref(r) for r in regions if selects(route, r))


def affected_regions(old: Obj | None, new: Obj | None, regions: Iterable[Obj]) -> list[Ref]:
    """Regions whose payment routing a change from ``old`` to ``new`` touches (either side).

    Creation: ``old`` is None; deletion: ``new`` is None.
    """
    regions = list(regions)
    return sorted(set(regions_selected(old, regions)) | set(regions_selected(new, regions)))


def routes_for(region: Obj, routes: Iterable[Obj]) -> list[Obj]:
    """The PSPRoutes that select ``region``, in a stable order (by name)."""
    return sorted((r for r in routes if selects(r, region)), key=ref)


class RouteIndex:
    """Route -> the regions it selected when last seen; answers 'which regions does it touch'."""

    def __init__(self) -> None:
        self._selected: dict[Ref, frozenset[Ref]] = {}

    def update(self, route: Obj, regions: Iterable[Obj]) -> list[Ref]:
        """Record ``route``; returns the regions it selected before or selects now."""
        key = ref(route)
        now = frozenset(regions_selected(route, regions))
        before = self._selected.get(key, frozenset())
        self._selected[key] = now
        return sorted(before | now)

    def remove(self, route: Obj) -> list[Ref]:
        """Forget ``route``; returns the regions it selected."""
        return sorted(self._selected.pop(ref(route), frozenset()))

    def selected(self, route: Ref) -> frozenset[Ref]:
        return self._selected.get(route, frozenset())
