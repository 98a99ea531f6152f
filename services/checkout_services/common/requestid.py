"""Request ids: taken from ``X-Request-Id`` (if sane) or made up (:func:`ids.new`: never
card-like, the next hop's card-number filter reads this header), echoed back, kept in a
contextvar for logs and for the calls a service makes to the next one."""

from __future__ import annotations

import contextvars
import re
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from checkout_services.common import ids

HEADER: Final = "X-Request-Id"
_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
current: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


class RequestIdMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware: it costs a task per request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                rid = value.decode("latin-1")
                break
        if not _SANE.match(rid):
            rid = ids.new()
        token = current.set(rid)
        raw = rid.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", raw))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current.reset(token)


def outgoing_headers() -> dict[str, str]:
    """Headers that carry the current request id to the next service."""
    rid = current.get()
    return {HEADER: rid} if rid else {}
