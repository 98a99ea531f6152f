"""Typed errors of the gateway (problem+json, RFC 9457)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from checkout_services.common import errors


class GatewayError(errors.ProblemError):
    service = "gateway"
    headers: dict[str, str]

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {}


class Unauthorized(GatewayError):
    status, slug, title = 401, "unauthorized", "Missing or invalid bearer token"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="Authorization")
        self.headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class RateLimited(GatewayError):
    status, slug, title = 429, "rate-limited", "Too many requests"

    def __init__(self, scope: str, retry_after_s: int) -> None:
        super().__init__(
            f"the {scope} rate limit is exhausted; retry after {retry_after_s} s", limit=scope
        )
        self.headers = {"Retry-After": str(retry_after_s)}


class BodyTooLarge(GatewayError):
    status, slug, title = 413, "body-too-large", "Request body too large"


class MalformedBody(GatewayError):
    status, slug, title = 400, "malformed-body", "The request body is not valid JSON"


class InvalidBody(GatewayError):
    status, slug, title = 422, "invalid-request", "Invalid request"


class UnknownMarket(GatewayError):
    status, slug, title = 422, "unknown-market", "Unknown market"


class MarketFencing(GatewayError):
    status, slug, title = 503, "market-fencing", "The market is moving to another region"

    def __init__(self, detail: str, retry_after_s: int, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {"Retry-After": str(retry_after_s)}
        if "writer" in extra:
            self.headers["X-Checkout-Writer"] = str(extra["writer"])


class MarketDown(GatewayError):
    status, slug, title = 503, "market-down", "No region may write for the market"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {"Retry-After": "30"}


class UpstreamUnavailable(GatewayError):
    status, slug, title = 503, "upstream-unavailable", "A service behind the gateway is unavailable"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {"Retry-After": "1"}


def response(exc: GatewayError, instance: str) -> JSONResponse:
    return JSONResponse(
        exc.problem(instance),
        status_code=exc.status,
        media_type=errors.PROBLEM,
        headers=exc.headers or None,
    )
