"""Run a service app with uvicorn after checking its settings (bad settings: exit 2, no
traceback)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from checkout_services.common import scrub, tracing
from checkout_services.common.settings import SettingsError


def serve(name: str, build: Callable[[], FastAPI], *, host: str, port: int) -> int:
    scrub.install_logging()
    level = os.environ.get("CHECKOUT_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        tracing.setup(name)  # off unless OTEL_EXPORTER_OTLP_ENDPOINT is set
        app = build()
    except SettingsError as exc:
        print(f"checkout-services {name}: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=level.lower() if level in ("DEBUG", "INFO") else "warning",
        access_log=level in ("DEBUG", "INFO"),
        lifespan="on",
    )
    return 0
