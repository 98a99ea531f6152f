"""A fake kube-apiserver on loopback for the client's unit tests (in the style of kopf's own:
a real HTTP server, real sockets, scripted answers), for what a real apiserver will not do on
demand: answer 410 Gone, send an ERROR event, drop a stream halfway, refuse a rotated token.

Plain asyncio streams: every answer closes its connection (``Connection: close``), so a test
controls exactly what the client reads. Watches (``?watch=1``) play the next script from
``watches``; lists answer the next of ``lists`` (the last one repeats); other paths are
answered from ``routes`` (path -> (status, body)) or 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

GROUP_VERSION = "coordination.k8s.io/v1"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/ns/leases"
DISCOVERY = {
    "kind": "APIResourceList",
    "groupVersion": GROUP_VERSION,
    "resources": [{"name": "leases", "kind": "Lease", "namespaced": True, "verbs": ["list"]}],
}


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def watch(self) -> bool:
        return self.params.get("watch") == "1"

    @property
    def token(self) -> str:
        return self.headers.get("authorization", "").removeprefix("Bearer ")


class Stream:
    """The chunked body of one watch answer."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    async def send(self, type_: str, obj: dict[str, Any]) -> None:
        await self.raw(json.dumps({"type": type_, "object": obj}) + "\n")

    async def raw(self, text: str) -> None:
        data = text.encode()
        self.writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await self.writer.drain()

    def reset(self) -> None:
        """Drop the connection mid-stream (no final chunk)."""
        self.writer.transport.abort()


Script = Callable[[Stream], Awaitable[None]]


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }


def lease(name: str, rv: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "Lease",
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv},
        "spec": spec,
    }


def lease_list(rv: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "LeaseList", "metadata": {"resourceVersion": rv}, "items": list(items)}


@dataclass
class FakeApiserver:
    tokens: set[str] | None = None
    """Accepted bearer tokens (None: any, or none)."""
    tls: ssl.SSLContext | None = None
    lists: list[Any] = field(default_factory=list)
    watches: list[Script] = field(default_factory=list)
    routes: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def watch_requests(self) -> list[Request]:
        return [r for r in self.requests if r.watch]

    def list_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path == LEASES and not r.watch]

    async def __aenter__(self) -> FakeApiserver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._answer(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = (await reader.readline()).decode()
        if not line:
            return
        method, target, _ = line.split(" ", 2)
        headers: dict[str, str] = {}
        while (raw := (await reader.readline()).decode().strip()) != "":
            key, _, value = raw.partition(":")
            headers[key.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
        url = urlsplit(target)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        req = Request(method, url.path, params, headers, body)
        self.requests.append(req)
        if req.path == "/apis/coordination.k8s.io/v1":  # discovery: open to everyone
            await self._json(writer, 200, DISCOVERY)
        elif self.tokens is not None and req.token not in self.tokens:
            await self._json(writer, 401, status(401, "Unauthorized", "token expired or revoked"))
        elif req.path == LEASES and req.watch:
            await self._watch(writer)
        elif req.path == LEASES and method == "GET":
            answer = self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]
            code, doc = answer if isinstance(answer, tuple) else (200, answer)
            await self._json(writer, code, doc)
        else:
            code, doc = self.routes.get((method, req.path), (404, status(404, "NotFound", "no")))
            await self._json(writer, code, doc)

    async def _json(self, writer: asyncio.StreamWriter, code: int, doc: Any) -> None:
        data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        head = (
            f"HTTP/1.1 {code} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + data)
        await writer.drain()

    async def _watch(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        stream = Stream(writer)
        if self.watches:
            await self.watches.pop(0)(stream)
        else:
            await asyncio.sleep(3600)  # a quiet watch, until the test ends
        if not writer.transport.is_closing():
            writer.write(b"0\r\n\r\n")
            await writer.drain()
