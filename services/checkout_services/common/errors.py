"""RFC 9457 problem+json: one base error class and the FastAPI handlers every service installs."""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Final

import asyncpg  # type: ignore[import-untyped]
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM: Final = "application/problem+json"
TYPE_ROOT: Final = "https://checkout-operator.dev/problems/"

log = logging.getLogger("checkout_services.common.errors")


class Problem(BaseModel):
    """The problem+json body (RFC 9457); extension members (``field``, ...) may follow."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


PROBLEM_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    code: {"model": Problem, "content": {PROBLEM: {}}} for code in (404, 409, 422, 503)
}


class ProblemError(Exception):
    """A typed error that becomes a problem+json response (``type`` = root + service + slug)."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"
    retry_after: ClassVar[int | None] = None
    service: ClassVar[str] = "common"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"{TYPE_ROOT}{self.service}/{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class NotFound(ProblemError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(ProblemError):
    status, slug, title = 409, "conflict", "Conflict"


class InvalidInput(ProblemError):
    status, slug, title = 422, "invalid-request", "Invalid request"


class NotReady(ProblemError):
    status, slug, title = 503, "not-ready", "Not ready"
    retry_after = 1


def problem_response(exc: ProblemError, instance: str) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return JSONResponse(
        exc.problem(instance), status_code=exc.status, media_type=PROBLEM, headers=headers
    )


def field_of(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_handlers(app: FastAPI, service: str) -> None:
    """Every error becomes problem+json: typed errors, bad input (422 naming the field), unknown
    routes, storage outages (503 + Retry-After) and the unexpected (500, no traceback leaked)."""
    base = f"{TYPE_ROOT}{service}/"

    @app.exception_handler(ProblemError)
    async def typed(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": field_of(tuple(e.get("loc", ()))), "message": str(e.get("msg", "invalid"))}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        body = {
            "type": base + "invalid-request",
            "title": "Invalid request",
            "status": 422,
            "detail": f"{first['field']}: {first['message']}",
            "instance": request.url.path,
            "field": first["field"],
            "errors": errors,
        }
        return JSONResponse(body, status_code=422, media_type=PROBLEM)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = {
            "type": "about:blank",
            "title": str(exc.detail),
            "status": exc.status_code,
            "detail": str(exc.detail),
            "instance": request.url.path,
        }
        return JSONResponse(
            body, status_code=exc.status_code, media_type=PROBLEM, headers=exc.headers
        )

    @app.exception_handler(RedisError)
    @app.exception_handler(asyncpg.PostgresConnectionError)
    @app.exception_handler(asyncpg.InterfaceError)
    @app.exception_handler(OSError)
    async def dependency_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("dependency unavailable: %s on %s", type(exc).__name__, request.url.path)
        body = {
            "type": base + "dependency-unavailable",
            "title": "A dependency is unavailable",
            "status": 503,
            "detail": f"storage unavailable ({type(exc).__name__}); retry later",
            "instance": request.url.path,
        }
        return JSONResponse(body, status_code=503, media_type=PROBLEM, headers={"Retry-After": "1"})

    @app.exception_handler(RecursionError)
    async def too_deep(request: Request, exc: RecursionError) -> JSONResponse:
        # input nested deeper than a parser or walker can follow: the client's fault
        body = {
            "type": base + "too-deep",
            "title": "Input nested too deeply",
            "status": 400,
            "detail": "the request nests too deeply to be processed",
            "instance": request.url.path,
        }
        return JSONResponse(body, status_code=400, media_type=PROBLEM)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
        body = {
            "type": base + "internal",
            "title": "Internal error",
            "status": 500,
            "detail": "internal error",
            "instance": request.url.path,
        }
        return JSONResponse(body, status_code=500, media_type=PROBLEM)
