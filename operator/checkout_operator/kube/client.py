"""A small, typed async Kubernetes client over one shared ``httpx.AsyncClient`` per cluster.

Every write (POST, PUT, PATCH, DELETE) is counted in ``write_count`` / ``writes_by_verb`` and
reported to ``on_write``, so tests and metrics can prove that a no-op resync writes nothing.
Objects are plain JSON dicts; server-side apply uses ONE field manager.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from types import TracebackType
from typing import Any, Final

import httpx

from checkout_operator.kube import config, discovery, errors

FIELD_MANAGER: Final = "checkout-operator"
APPLY_PATCH: Final = "application/apply-patch+yaml"
MERGE_PATCH: Final = "application/merge-patch+json"
EVENT_MESSAGE_LIMIT: Final = 1024
THROTTLE_RETRIES: Final = 5
MAX_CONNECTIONS: Final = 32
"""Connections per cluster, all kept alive. httpx's default (100, of which only 20 are kept)
cost a TLS handshake for most requests of a burst, and its pool scans every queued request
per connection change, so hundreds of queued requests made the pool itself the hot spot."""

logger = logging.getLogger("checkout_operator.kube")

Obj = dict[str, Any]
WriteHook = Callable[[str, str], None]
"""Called with (verb, kind) after every write request, successful or not."""


class _Auth(httpx.Auth):
    """Bearer token, read per request (rotating service-account tokens)."""

    def __init__(self, creds: config.Credentials) -> None:
        self._creds = creds

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._creds.current_token()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        yield request


def selector(labels: Mapping[str, str] | str | None) -> str | None:
    """A label selector string from ``{key: value}`` (equality terms, sorted)."""
    if labels is None or isinstance(labels, str):
        return labels
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def describe(api_version: str, kind: str, name: str | None, namespace: str | None) -> str:
    where = f"{namespace}/" if namespace else ""
    return f"{kind}.{api_version} {where}{name}" if name else f"{kind}.{api_version}"


class KubeClient:
    """One cluster. Use as an async context manager, or call ``aclose()``.

    ``timeout`` (read, write, pool) defaults to the apiserver's own request timeout (60 s): a
    busy apiserver that creates Services one ClusterIP at a time answers a burst of them
    late, but it answers; giving up earlier only turns into a retry of work already done."""

    def __init__(
        self,
        creds: config.Credentials,
        *,
        field_manager: str = FIELD_MANAGER,
        timeout: float = 60.0,
        name: str = "local",
        on_write: WriteHook | None = None,
    ) -> None:
        self.creds = creds
        self.name = name
        self.field_manager = field_manager
        self.on_write = on_write
        self.write_count = 0
        self.writes_by_verb: collections.Counter[str] = collections.Counter()
        self.request_count = 0
        self._http = httpx.AsyncClient(
            base_url=creds.server,
            verify=creds.ssl_context(),
            auth=_Auth(creds),
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS,
                max_keepalive_connections=MAX_CONNECTIONS,
                keepalive_expiry=60.0,
            ),
            headers={"User-Agent": f"{field_manager}/python-httpx", "Accept": "application/json"},
            trust_env=False,
        )
        self.discovery = discovery.Discovery(self._discovery_fetch)

    @property
    def default_namespace(self) -> str | None:
        return self.creds.default_namespace

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- transport ----------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        target: str = "",
        kind: str = "",
    ) -> Any:
        """One request; returns the decoded JSON; raises a typed ``errors.ApiError``.

        429 (throttled, or storage still initializing) is retried after the server's
        Retry-After (capped), up to ``THROTTLE_RETRIES`` times: the server did not process it.
        """
        for attempt in range(THROTTLE_RETRIES + 1):
            try:
                return await self._request_once(
                    method,
                    path,
                    params=params,
                    body=body,
                    content_type=content_type,
                    target=target,
                    kind=kind,
                )
            except errors.TooManyRequests as exc:
                if attempt == THROTTLE_RETRIES:
                    raise
                await asyncio.sleep(min(exc.retry_after or 0.1 * 2**attempt, 2.0))
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_text(self, path: str, params: Mapping[str, str] | None = None) -> str:
        """A GET whose answer is text, not JSON (e.g. a pod's log)."""
        self.request_count += 1
        try:
            response = await self._http.request("GET", path, params=params)
        except (httpx.TransportError, OSError) as exc:
            raise self._transport_error(f"GET {path}", exc) from None
        if response.status_code >= 400:
            try:
                decoded = response.json()
            except ValueError:
                decoded = None
            raise errors.from_response(response.status_code, decoded, verb="GET", target=path)
        return response.text

    async def _request_once(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        body: Any,
        content_type: str,
        target: str,
        kind: str,
    ) -> Any:
        write = method != "GET"
        self.request_count += 1
        if write:
            self.write_count += 1
            self.writes_by_verb[method] += 1
            if self.on_write is not None:
                self.on_write(method, kind)
        headers = {"Content-Type": content_type} if body is not None else None
        content = json.dumps(body, separators=(",", ":")) if body is not None else None
        extensions = (
            {"sni_hostname": self.creds.tls_server_name} if self.creds.tls_server_name else None
        )
        try:
            response = await self._http.request(
                method,
                path,
                params=params,
                content=content,
                headers=headers,
                extensions=extensions,
            )
        except (httpx.TransportError, OSError) as exc:
            raise self._transport_error(f"{method} {target or path}", exc) from None
        logger.debug("%s %s -> %s", method, path, response.status_code)
        try:
            decoded = response.json() if response.content else None
        except ValueError:
            decoded = None
        if response.status_code >= 400:
            error = errors.from_response(
                response.status_code, decoded, verb=method, target=target or path
            )
            try:
                error.retry_after = float(response.headers.get("Retry-After", ""))
            except ValueError:
                error.retry_after = None
            raise error
        return decoded

    async def _discovery_fetch(self, path: str) -> Mapping[str, Any] | None:
        try:
            body = await self.request("GET", path)
        except errors.NotFound:
            return None
        return body if isinstance(body, Mapping) else None

    async def resource(self, api_version: str, kind: str) -> discovery.Resource:
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
    ) -> list[Obj]:
        """Objects of a kind (in ``namespace``, or all namespaces when None) matching ``labels``.

        Items carry ``apiVersion`` and ``kind`` (a list response leaves them out).
        """
        res = await self.resource(api_version, kind)
        params: dict[str, str] = {}
        sel = selector(labels)
        if sel:
            params["labelSelector"] = sel
        body = await self.request(
            "GET",
            res.path(namespace),
            params=params,
            target=describe(api_version, kind, None, namespace),
            kind=kind,
        )
        items: list[Obj] = []
        for item in (body or {}).get("items") or ():
            obj = dict(item)
            obj.setdefault("apiVersion", res.api_version)
            obj.setdefault("kind", kind)
            items.append(obj)
        return items

    async def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        labels: Mapping[str, str] | str | None = None,
        *,
        timeout_seconds: int = 60,
    ) -> AsyncIterator[tuple[str, Obj]]:
        """A watch of a kind (``?watch=1``) from now on: yields ``(type, object)`` per event
        (``ADDED``, ``MODIFIED``, ``DELETED``) until the server ends the watch after
        ``timeout_seconds``; the caller lists again and re-watches (no resourceVersion
        bookkeeping: a caller that needs every change lists after each watch ends).
        ``ERROR`` events (e.g. 410 Gone) end the watch too."""
        res = await self.resource(api_version, kind)
        params: dict[str, str] = {"watch": "1", "timeoutSeconds": str(timeout_seconds)}
        sel = selector(labels)
        if sel:
            params["labelSelector"] = sel
        path = res.path(namespace)
        self.request_count += 1
        try:
            async with self._http.stream(
                "GET",
                path,
                params=params,
                timeout=httpx.Timeout(timeout_seconds + 10.0, connect=10.0),
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise errors.from_response(
                        response.status_code, None, verb="WATCH", target=path
                    )
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    type_ = str(event.get("type") or "")
                    if type_ == "ERROR":
                        return
                    yield type_, dict(event.get("object") or {})
        except (httpx.TransportError, OSError) as exc:
            raise self._transport_error(f"WATCH {path}", exc) from None

    def _transport_error(self, call: str, exc: BaseException) -> errors.TransportError:
        """The error for a call that got no answer: names the call and the cluster, never the
        request's body or credentials."""
        if isinstance(exc, httpx.TimeoutException):
            return errors.TransportError(f"{call}: timed out talking to {self.name} cluster")
        return errors.TransportError(
            f"{call}: cannot reach the {self.name} cluster at {self.creds.server}: "
            f"{type(exc).__name__}"
        )

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
    ) -> Obj:
        """Merge-patch ``status`` through the status subresource."""
        return await self.merge_patch(
            api_version, kind, name, namespace, {"status": status}, subresource="status"
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
        meta = involved.get("metadata") or {}
        namespace = meta.get("namespace") or self.default_namespace or "default"
        stamp = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        if len(message) > EVENT_MESSAGE_LIMIT:
            message = message[: EVENT_MESSAGE_LIMIT - 3] + "..."
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name', 'object')}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message,
            "action": action,
            "source": {"component": self.field_manager},
            "reportingComponent": self.field_manager,
            "reportingInstance": socket.gethostname()[:128],
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        res = await self.resource("v1", "Event")
        body = await self.request(
            "POST",
            res.path(namespace),
            body=event,
            target=describe("v1", "Event", None, namespace),
            kind="Event",
        )
        return dict(body)
