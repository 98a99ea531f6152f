"""The HTTP side of :class:`checkout_kube.client.KubeClient`: one shared ``httpx.AsyncClient``
per cluster, authentication, retries, error mapping, request counting, the watch stream.

Retries: 429 always (the server did not process it); 5xx and broken connections only for
idempotent requests (every verb but POST: GET, DELETE, server-side apply and merge patches,
which carry the resourceVersion when they must not be applied twice); a connection that could
not even be opened, for every request. ``tls-server-name`` (SNI) applies to watches too.

Every write (POST, PUT, PATCH, DELETE) is counted in ``write_count`` / ``writes_by_verb`` and
reported to ``on_write``, so tests and metrics can prove that a no-op resync writes nothing.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from types import TracebackType
from typing import Any, Final, Self

import httpx

from checkout_kube import auth, config, errors, wire
from checkout_kube.wire import idempotent
from checkout_tasks import FULL_JITTER, Retries

FIELD_MANAGER: Final = "checkout-operator"
RETRIES: Final = 5
"""Retries of one request (429, and 5xx / connection errors where safe, see the docstring)."""
RETRY_CAP: Final = 2.0
"""Seconds: the longest wait before one retry."""
MAX_CONNECTIONS: Final = 32
"""Connections per cluster, all kept alive. httpx's default (100, of which only 20 are kept)
cost a TLS handshake for most requests of a burst, and its pool scans every queued request
per connection change, so hundreds of queued requests made the pool itself the hot spot."""

logger = logging.getLogger("checkout_kube")

WriteHook = Callable[[str, str], None]
"""Called with (verb, kind) after every write request, successful or not."""


class Transport:
    """One cluster's HTTP connection pool. Use as an async context manager, or ``aclose()``.

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
            auth=auth.TokenAuth(creds, clock),
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS,
                max_keepalive_connections=MAX_CONNECTIONS,
                keepalive_expiry=60.0,
            ),
            headers={"User-Agent": f"{field_manager}/python-httpx", "Accept": "application/json"},
            trust_env=False,
        )

    @property
    def default_namespace(self) -> str | None:
        return self.creds.default_namespace

    async def __aenter__(self) -> Self:
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
        delays = Retries(replace(FULL_JITTER, initial=0.1, maximum=RETRY_CAP))
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

    async def get_text(self, path: str, params: Mapping[str, str] | None = None) -> str:
        """A GET whose answer is text, not JSON (e.g. a pod's log)."""
        self.request_count += 1
        try:
            response = await self._http.request(
                "GET", path, params=params, extensions=self._extensions
            )
        except (httpx.TransportError, OSError) as exc:
            raise self._transport_error(f"GET {path}", exc) from exc
        if response.status_code >= 400:
            raise errors.from_response(
                response.status_code, wire.json_or_none(response.content), verb="GET", target=path
            )
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

    async def stream(
        self,
        path: str,
        params: Mapping[str, str],
        *,
        timeout_seconds: int,
        target: str,
    ) -> AsyncIterator[tuple[str, wire.Obj]]:
        """The events of one watch request (see :meth:`KubeClient.watch`)."""
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
                        response.status_code, wire.json_or_none(raw), verb="WATCH", target=path
                    )
                async for line in response.aiter_lines():
                    if line.strip():
                        yield wire.watch_event(line, target, path)
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
