"""``checkout-services pricing``."""

from __future__ import annotations

from fastapi import FastAPI

from checkout_contract import pricing as config
from checkout_services.common import runner, settings
from checkout_services.pricing import app


def build() -> FastAPI:
    cfg = app.Settings.from_env()
    settings.load_model(cfg.pricing_file, config.PricingConfig, "pricing config")
    return app.create_app(cfg)


def run(*, host: str, port: int) -> int:
    return runner.serve("pricing", build, host=host, port=port)
