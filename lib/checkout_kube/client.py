"""A small, typed async Kubernetes client over one shared ``httpx.AsyncClient`` per cluster.

The one client of the project: the operator, the services' lease keeper, the gateway's lease
view and the demo all use it (``checkout_services`` may not import the operator, so it lives
in its own package). Retries: 429 always (the server did not process it); 5xx and broken
connections only for idempotent requests (every verb but POST: GET, DELETE, server-side apply
and merge patches, which carry the resourceVersion when they must not be applied twice); a
connection that could not even be opened for every request. Watches: :meth:`KubeClient.watch`
is one watch request; :func:`checkout_kube.watch.list_watch` is the loop around it.

Every write (POST, PUT, PATCH, DELETE) is counted in ``write_count`` / ``writes_by_verb`` and
reported to ``on_write``, so tests and metrics can prove that a no-op resync writes nothing.
Objects are plain JSON dicts; server-side apply uses ONE field manager.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import datetime
import json
import logging
import math
import socket
import time
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from types import TracebackType
from typing import Any, Final

import httpx

from checkout_contract import timeutil
from checkout_kube import config, discovery, errors
from checkout_kube.backoff import Backoff

FIELD_MANAGER: Final = "checkout-operator"
APPLY_PATCH: Final = "application/apply-patch+yaml"
MERGE_PATCH: Final = "application/merge-patch+json"
EVENT_MESSAGE_LIMIT: Final = 1024
RETRIES: Final = 5
"""Retries of one request (429, and 5xx / connection errors where safe, see the docstring)."""
RETRY_CAP: Final = 2.0
"""Seconds: the longest wait before one retry."""
TOKEN_TTL: Final = 60.0
"""Seconds a token read from a token file is used before the file is read again (client-go
re-reads every minute); a 401 re-reads it at once and retries the request once."""
MAX_CONNECTIONS: Final = 32
"""Connections per cluster, all kept alive. httpx's default (100, of which only 20 are kept)
cost a TLS handshake for most requests of a burst, and its pool scans every queued request
per connection change, so hundreds of queued requests made the pool itself the hot spot."""

logger = logging.getLogger("checkout_kube")

Obj = dict[str, Any]
WriteHook = Callable[[str, str], None]
"""Called with (verb, kind) after every write request, successful or not."""


class _Auth(httpx.Auth):
    """Bearer token. From a token file (in-cluster tokens rotate): cached for ``TOKEN_TTL``
    seconds, and read again at once when the server answers 401 (the request is then retried
    once with the new token, if it changed)."""

    def __init__(self, creds: config.Credentials, clock: Callable[[], float]) -> None:
        self._creds = creds
        self._clock = clock
        self._token: str | None = None
        self._read_at = -math.inf

    def token(self, *, fresh: bool = False) -> str | None:
        if not self._creds.token_file:
            return self._creds.token
        if fresh or self._clock() - self._read_at >= TOKEN_TTL:
            self._token = self._creds.current_token()
            self._read_at = self._clock()
        return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.token()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401 and self._creds.token_file:
            renewed = self.token(fresh=True)
            if renewed and renewed != token:
                request.headers["Authorization"] = f"Bearer {renewed}"
                yield request


def selector(labels: Mapping[str, str] | str | None) -> str | None:
    """A label selector string from ``{key: value}`` (equality terms, sorted)."""
    if labels is None or isinstance(labels, str):
        return labels
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def idempotent(method: str) -> bool:
    """Whether sending ``method`` twice does no more than sending it once: every verb the client
    uses but POST (server-side apply and merge patches are idempotent; the compare-and-swap
    ones carry a resourceVersion, so a repeat after a lost answer gets a 409 at worst)."""
    return method != "POST"


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
        retries: int = RETRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.creds = creds
        self.name = name
        self.field_manager = field_manager
        self.on_write = on_write
        self.write_count = 0
        self.writes_by_verb: collections.Counter[str] = collections.Counter()
        self.request_count = 0
        self.retries = retries
        self.retried = 0
        """Requests sent again (after a 429, a 5xx or a broken connection)."""
        self._http = httpx.AsyncClient(
            base_url=creds.server,
            verify=creds.ssl_context(),
            auth=_Auth(creds, clock),
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
        """One request; returns the decoded JSON; raises a typed ``errors.KubeError``.

        Retried up to ``retries`` times, after the server's Retry-After or a jittered
        exponential delay (capped at ``RETRY_CAP``): 429 (throttled, or storage still
        initializing: the server did not process it); 5xx and broken connections when the
        request is :func:`idempotent`; a connection that could not be opened, always.
        """
        delays = Backoff(base=0.1, cap=RETRY_CAP)
        for attempt in range(self.retries + 1):
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
                if attempt == self.retries:
                    raise
                delay = exc.retry_after or delays.next()
            except errors.ServerError as exc:
                if attempt == self.retries or not idempotent(method):
                    raise
                delay = exc.retry_after or delays.next()
            except errors.TransportError as exc:
                if attempt == self.retries or not (exc.unsent or idempotent(method)):
                    raise
                delay = delays.next()
            self.retried += 1
            await asyncio.sleep(min(delay, RETRY_CAP))
        raise AssertionError("unreachable")  # pragma: no cover

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
        try:
            response = await self._http.request(
                method,
                path,
                params=params,
                content=content,
                headers=headers,
                extensions=self._extensions,
            )
        except (httpx.TransportError, OSError) as exc:
            raise self._transport_error(f"{method} {target or path}", exc) from exc
        logger.debug("%s %s -> %s", method, path, response.status_code)
        try:
            decoded = response.json() if response.content else None
        except ValueError as exc:
            if response.status_code < 400:
                raise errors.UnreadableAnswer(
                    f"{method} {target or path}: the answer is not JSON"
                ) from exc
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

    @property
    def _extensions(self) -> dict[str, Any] | None:
        """``tls-server-name``: the TLS SNI and certificate name, for every request and watch."""
        name = self.creds.tls_server_name
        return {"sni_hostname": name} if name else None

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
        self.request_count += 1
        try:
            async with self._http.stream(
                "GET",
                path,
                params=params,
                timeout=httpx.Timeout(timeout_seconds + 10.0, connect=10.0),
                extensions=self._extensions,
            ) as response:
                if response.status_code >= 400:
                    raw = await response.aread()
                    raise errors.from_response(
                        response.status_code, _json_or_none(raw), verb="WATCH", target=path
                    )
                async for line in response.aiter_lines():
                    if line.strip():
                        yield _watch_event(line, target, path)
        except (httpx.TransportError, OSError) as exc:
            raise self._transport_error(target, exc) from exc

    def _transport_error(self, call: str, exc: BaseException) -> errors.TransportError:
        """The error for a call that got no answer: names the call and the cluster, never the
        request's body or credentials. ``unsent``: the connection was never opened."""
        unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | ConnectionRefusedError)
        if isinstance(exc, httpx.TimeoutException):
            return errors.TransportError(
                f"{call}: timed out talking to {self.name} cluster", unsent=unsent
            )
        return errors.TransportError(
            f"{call}: cannot reach the {self.name} cluster at {self.creds.server}: "
            f"{type(exc).__name__}",
            unsent=unsent,
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
        stamp = timeutil.rfc3339(now or datetime.datetime.now(datetime.UTC))
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


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _watch_event(line: str, target: str, path: str) -> tuple[str, Obj]:
    """One line of a watch stream -> ``(type, object)``; an ERROR event raises its Status."""
    try:
        event = json.loads(line)
        type_ = str(event.get("type") or "")
        obj = event.get("object") or {}
        if not isinstance(obj, Mapping):
            raise TypeError("object is not a mapping")
    except (ValueError, TypeError, AttributeError) as exc:
        raise errors.UnreadableAnswer(f"{target}: an unreadable watch event") from exc
    if type_ == "ERROR":
        code = obj.get("code")
        status = code if isinstance(code, int) and code >= 400 else 500
        raise errors.from_response(status, obj, verb="WATCH", target=path)
    return type_, dict(obj)
