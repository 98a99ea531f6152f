"""Resource discovery: which plural and scope serve an apiVersion/kind, read from the server.

One discovery request per group-version (``/api/v1`` or ``/apis/<group>/<version>``), cached.
A kind the server does not know (yet) is looked up again after ``miss_ttl`` seconds, so a CRD
installed while the operator runs (Strimzi, Gateway API) is picked up.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from checkout_kube import errors


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    subresources: frozenset[str] = frozenset()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        parts = [root]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
            if subresource:
                parts.append(subresource)
        return "/".join(parts)


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def parse_resource_list(api_version: str, body: Mapping[str, Any]) -> dict[str, Resource]:
    """Kind -> Resource from an ``APIResourceList`` document (pure)."""
    group, version = split_api_version(api_version)
    subs: dict[str, set[str]] = {}
    mains: dict[str, Mapping[str, Any]] = {}
    for item in body.get("resources") or ():
        name = str(item.get("name", ""))
        plural, _, sub = name.partition("/")
        if sub:
            subs.setdefault(plural, set()).add(sub)
        else:
            mains[plural] = item
    result: dict[str, Resource] = {}
    for plural, item in mains.items():
        kind = str(item.get("kind", ""))
        if kind and kind not in result:
            result[kind] = Resource(
                group=group,
                version=version,
                kind=kind,
                plural=plural,
                namespaced=bool(item.get("namespaced", False)),
                subresources=frozenset(subs.get(plural, ())),
            )
    return result


Fetch = Callable[[str], Awaitable[Mapping[str, Any] | None]]
"""GET a discovery path; None when the server answers 404."""


class Discovery:
    def __init__(
        self, fetch: Fetch, *, miss_ttl: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._fetch = fetch
        self._miss_ttl = miss_ttl
        self._clock = clock
        self._by_gv: dict[str, dict[str, Resource]] = {}
        self._fetched_at: dict[str, float] = {}

    def invalidate(self) -> None:
        self._by_gv.clear()
        self._fetched_at.clear()

    async def _load(self, api_version: str) -> dict[str, Resource]:
        group, version = split_api_version(api_version)
        if not version:
            raise errors.KindNotServed(api_version, "?")
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        body = await self._fetch(path)
        kinds = parse_resource_list(api_version, body) if body is not None else {}
        self._by_gv[api_version] = kinds
        self._fetched_at[api_version] = self._clock()
        return kinds

    async def find(self, api_version: str, kind: str) -> Resource | None:
        """The resource serving ``kind`` in ``api_version``, or None if the server has none."""
        kinds = self._by_gv.get(api_version)
        if kinds is not None and kind in kinds:
            return kinds[kind]
        fetched = self._fetched_at.get(api_version)
        if kinds is None or fetched is None or self._clock() - fetched >= self._miss_ttl:
            kinds = await self._load(api_version)
        return kinds.get(kind)

    async def resource(self, api_version: str, kind: str) -> Resource:
        found = await self.find(api_version, kind)
        if found is None:
            raise errors.KindNotServed(api_version, kind)
        return found
