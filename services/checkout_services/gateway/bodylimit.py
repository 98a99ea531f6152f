"""Refuse oversized request bodies (413 problem+json): by ``Content-Length`` before reading
anything, and by counting the bytes of a chunked body as the app reads it."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from checkout_services.gateway import exceptions
from checkout_services.gateway.metrics import GatewayMetrics


def too_large(max_bytes: int) -> exceptions.BodyTooLarge:
    return exceptions.BodyTooLarge(
        f"the request body exceeds {max_bytes} bytes", field="body", limit=max_bytes
    )


class BodyLimitMiddleware:
    """Pure ASGI. A body that turns out too large while streaming raises
    :class:`exceptions.BodyTooLarge` inside the app, whose handler answers 413; raised outside
    the app's handlers (a middleware reading the body), this middleware answers 413 itself."""

    def __init__(self, app: ASGIApp, max_bytes: int, metrics: GatewayMetrics) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
                if length > self.max_bytes:
                    self.metrics.rejections.labels("body-too-large").inc()
                    response = exceptions.response(too_large(self.max_bytes), scope.get("path", ""))
                    await response(scope, receive, send)
                    return
                break
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    self.metrics.rejections.labels("body-too-large").inc()
                    raise too_large(self.max_bytes)
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except exceptions.BodyTooLarge as exc:
            # raised where no exception handler is around (a middleware reading the body,
            # e.g. the card-number check): answer 413 here unless a response already began
            if started:
                raise
            await exceptions.response(exc, scope.get("path", ""))(scope, receive, send)
