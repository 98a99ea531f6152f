"""A small, typed async Kubernetes client: the project's one (see :mod:`checkout_kube`).

Objects are plain JSON dicts; server-side apply uses ONE field manager. The HTTP side (pool,
auth, retries, errors, write counting, the watch stream) is :class:`checkout_kube.transport.
Transport`; this module adds discovery and the API verbs. Watches: :meth:`KubeClient.watch`
is one watch request; :func:`checkout_kube.watch.list_watch` is the loop around it.
"""

from __future__ import annotations

import builtins
import datetime
import functools
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

from checkout_kube import errors, events, wire
from checkout_kube.discovery import Discovery, Resource
from checkout_kube.transport import FIELD_MANAGER, RETRIES, Transport, WriteHook
from checkout_kube.wire import describe, selector

__all__ = ["FIELD_MANAGER", "RETRIES", "KubeClient", "Obj", "WriteHook", "describe", "selector"]

APPLY_PATCH: Final = "application/apply-patch+yaml"
MERGE_PATCH: Final = "application/merge-patch+json"
EVENT_MESSAGE_LIMIT: Final = events.MESSAGE_LIMIT

Obj = wire.Obj


class KubeClient(Transport):
    """One cluster: discovery, get, list, watch, server-side apply, merge patch, delete,
    Events. Use as an async context manager, or call ``aclose()``."""

    @functools.cached_property
    def discovery(self) -> Discovery:
        """GVK -> resource paths, read from the server's discovery documents once."""
        return Discovery(self._discovery_fetch)

    async def _discovery_fetch(self, path: str) -> Mapping[str, Any] | None:
        try:
            body = await self.request("GET", path)
        except errors.NotFound:
            return None
        return body if isinstance(body, Mapping) else None

    async def resource(self, api_version: str, kind: str) -> Resource:
        return await self.discovery.resource(api_version, kind)

    async def serves(self, api_version: str, kind: str) -> bool:
        return await self.discovery.find(api_version, kind) is not None

    # -- reads --------------------------------------------------------------------------------

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Obj:
        res = await self.resource(api_version, kind)
        body = await self.request(
            "GET",
            res.path(namespace, name),
            target=describe(api_version, kind, name, namespace),
            kind=kind,
        )
        return dict(body)

    async def get_or_none(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Obj | None:
        try:
            return await self.get(api_version, kind, name, namespace)
        except errors.NotFound:
            return None

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        labels: Mapping[str, str] | str | None = None,
        *,
        resource_version: str | None = None,
    ) -> list[Obj]:
        """Objects of a kind (in ``namespace``, or all namespaces when None) matching ``labels``.

        Items carry ``apiVersion`` and ``kind`` (a list response leaves them out).
        ``resource_version="0"`` serves the list from the apiserver's watch cache.
        """
        items, _ = await self.list_versioned(
            api_version, kind, namespace, labels, resource_version=resource_version
        )
        return items

    async def list_versioned(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        labels: Mapping[str, str] | str | None = None,
        *,
        resource_version: str | None = None,
    ) -> tuple[builtins.list[Obj], str]:
        """:meth:`list` and the list's resourceVersion (where a watch of it starts)."""
        res = await self.resource(api_version, kind)
        params: dict[str, str] = {}
        sel = selector(labels)
        if sel:
            params["labelSelector"] = sel
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        body = await self.request(
            "GET",
            res.path(namespace),
            params=params,
            target=describe(api_version, kind, None, namespace),
            kind=kind,
        )
        if not isinstance(body, Mapping):
            raise errors.UnreadableAnswer(
                f"LIST {describe(api_version, kind, None, namespace)}: not a list"
            )
        items: builtins.list[Obj] = []
        for item in body.get("items") or ():
            obj = dict(item)
            obj.setdefault("apiVersion", res.api_version)
            obj.setdefault("kind", kind)
            items.append(obj)
        return items, str((body.get("metadata") or {}).get("resourceVersion") or "")

    async def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        labels: Mapping[str, str] | str | None = None,
        *,
        timeout_seconds: int = 60,
        resource_version: str | None = None,
    ) -> AsyncIterator[tuple[str, Obj]]:
        """One watch request: yields ``(type, object)`` per event until the server ends the
        watch (after about ``timeout_seconds``).

        With ``resource_version`` (from a list, or the last event seen) the watch starts there
        and asks for bookmarks: ``BOOKMARK`` events carry only ``metadata.resourceVersion``,
        to resume from after the watch ends. Without it the server starts from its current
        state (synthetic ``ADDED`` events first). An ``ERROR`` event raises the typed error of
        its Status (``errors.Gone`` for 410: the resourceVersion is too old, list again); an
        unreadable line raises ``errors.UnreadableAnswer``; a broken stream raises
        ``errors.TransportError``. :func:`checkout_kube.watch.list_watch` handles all three.
        """
        res = await self.resource(api_version, kind)
        params: dict[str, str] = {"watch": "1", "timeoutSeconds": str(timeout_seconds)}
        sel = selector(labels)
        if sel:
            params["labelSelector"] = sel
        if resource_version:
            params["resourceVersion"] = resource_version
            params["allowWatchBookmarks"] = "true"
        path = res.path(namespace)
        target = f"WATCH {describe(api_version, kind, None, namespace)}"
        async for event in self.stream(
            path, params, timeout_seconds=timeout_seconds, target=target
        ):
            yield event

    # -- writes -------------------------------------------------------------------------------

    async def apply(self, obj: Mapping[str, Any], *, force: bool = True) -> Obj:
        """Server-side apply of ``obj`` with this client's field manager."""
        api_version = str(obj.get("apiVersion", ""))
        kind = str(obj.get("kind", ""))
        meta = obj.get("metadata") or {}
        name = str(meta.get("name", ""))
        namespace = meta.get("namespace")
        if not (api_version and kind and name):
            raise ValueError("apply needs apiVersion, kind and metadata.name")
        res = await self.resource(api_version, kind)
        params = {"fieldManager": self.field_manager}
        if force:
            params["force"] = "true"
        body = await self.request(
            "PATCH",
            res.path(namespace, name),
            params=params,
            body=obj,
            content_type=APPLY_PATCH,
            target=describe(api_version, kind, name, namespace),
            kind=kind,
        )
        return dict(body)

    async def merge_patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        patch: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> Obj:
        res = await self.resource(api_version, kind)
        body = await self.request(
            "PATCH",
            res.path(namespace, name, subresource),
            params={"fieldManager": self.field_manager},
            body=patch,
            content_type=MERGE_PATCH,
            target=describe(api_version, kind, name, namespace),
            kind=kind,
        )
        return dict(body)

    async def patch_status(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> Obj:
        """Merge-patch ``status`` through the status subresource. ``resource_version``: only if
        the object is still at that version (else :class:`errors.Conflict`), so a status
        computed from an object read earlier never overwrites what another writer put there
        since (a merge patch replaces a whole list, such as ``conditions``)."""
        patch: dict[str, Any] = {"status": status}
        if resource_version:
            patch["metadata"] = {"resourceVersion": resource_version}
        return await self.merge_patch(
            api_version, kind, name, namespace, patch, subresource="status"
        )

    async def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> bool:
        """Delete with propagationPolicy Background; False when it was already gone."""
        res = await self.resource(api_version, kind)
        try:
            await self.request(
                "DELETE",
                res.path(namespace, name),
                body={
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "propagationPolicy": "Background",
                },
                target=describe(api_version, kind, name, namespace),
                kind=kind,
            )
        except errors.NotFound:
            return False
        return True

    async def post_event(
        self,
        involved: Mapping[str, Any],
        *,
        type_: str,
        reason: str,
        message: str,
        action: str = "Reconcile",
        now: datetime.datetime | None = None,
    ) -> Obj:
        """A core/v1 Event about ``involved`` (an object with apiVersion, kind, metadata)."""
        namespace = events.namespace_of(involved) or self.default_namespace or "default"
        event = events.event_body(
            involved,
            namespace=namespace,
            type_=type_,
            reason=reason,
            message=message,
            action=action,
            component=self.field_manager,
            now=now or datetime.datetime.now(datetime.UTC),
        )
        res = await self.resource("v1", "Event")
        body = await self.request(
            "POST",
            res.path(namespace),
            body=event,
            target=describe("v1", "Event", None, namespace),
            kind="Event",
        )
        return dict(body)
