"""``/health/live`` and ``/health/ready`` (ready checks the service's own dependencies; the
failover probes call it), and ``/metrics``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from checkout_services.common import errors

Check = Callable[[], Awaitable[Any]]


async def run_checks(checks: Mapping[str, Check], limit_s: float = 2.0) -> dict[str, str]:
    async def one(check: Check) -> str:
        try:
            await asyncio.wait_for(check(), limit_s)
        except Exception as exc:
            return type(exc).__name__
        return "ok"

    results = await asyncio.gather(*(one(c) for c in checks.values()))
    return dict(zip(checks.keys(), results, strict=True))


def router() -> APIRouter:
    """Reads ``app.state.health_checks`` (name -> async check) and ``app.state.metrics``."""
    r = APIRouter(tags=["health"])

    @r.get("/health/live", summary="Liveness")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @r.get(
        "/health/ready",
        summary="Readiness: the service's own dependencies answer",
        responses={503: {"model": errors.Problem, "content": {errors.PROBLEM: {}}}},
    )
    async def ready(request: Request) -> Response:
        checks = await run_checks(getattr(request.app.state, "health_checks", {}))
        if all(v == "ok" for v in checks.values()):
            return JSONResponse({"status": "ok", "checks": checks})
        err = errors.NotReady(
            "not ready: " + ", ".join(f"{k}={v}" for k, v in checks.items() if v != "ok"),
            checks=checks,
        )
        return errors.problem_response(err, request.url.path)

    @r.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        registry = request.app.state.metrics.registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return r
