"""``checkout-services gateway``."""

from __future__ import annotations

from fastapi import FastAPI

from checkout_services.common import runner, settings
from checkout_services.gateway import app
from checkout_services.gateway.config import Settings


def build() -> FastAPI:
    cfg = Settings.from_env()
    settings.load_region_config(cfg.common.region_config_file)
    settings.load_fleet_routing(cfg.common.fleet_routing_file)
    return app.create_app(cfg)


def run(*, host: str, port: int) -> int:
    return runner.serve("gateway", build, host=host, port=port)
