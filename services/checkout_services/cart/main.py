"""``checkout-services cart``."""

from __future__ import annotations

from fastapi import FastAPI

from checkout_services.cart import app
from checkout_services.common import runner, settings


def build() -> FastAPI:
    cfg = app.Settings.from_env()
    settings.load_region_config(cfg.common.region_config_file)
    return app.create_app(cfg)


def run(*, host: str, port: int) -> int:
    return runner.serve("cart", build, host=host, port=port)
