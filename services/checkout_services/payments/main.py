"""``checkout-services payments``: check the settings, then run the service with uvicorn."""

from __future__ import annotations

import logging
import os
import sys

import uvicorn

from checkout_contract import payments as config
from checkout_services.common import principal, scrub, tracing
from checkout_services.common import settings as common_settings
from checkout_services.payments import app as payments_app
from checkout_services.payments.adapters import base
from checkout_services.payments.settings import Settings, SettingsError, load_routing


def run(*, host: str, port: int) -> int:
    scrub.install_logging()
    level = os.environ.get("PAYMENTS_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        tracing.setup("payments")  # off unless OTEL_EXPORTER_OTLP_ENDPOINT is set
        principal.load_key()  # CHECKOUT_GATEWAY_KEY: the payment operations check signatures
    except common_settings.SettingsError as exc:
        print(f"checkout-services payments: {exc}", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
        routing: config.PaymentRoutingConfig = load_routing(settings.routing_file)
        for route in routing.routes:
            for provider in route.providers:
                base.load_credentials(provider)
    except (SettingsError, base.CredentialsError) as exc:
        print(f"checkout-services payments: {exc}", file=sys.stderr)
        return 2
    app = payments_app.create_app(settings)
    tracing.instrument_app(app)  # nothing when tracing is off
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=level.lower() if level in ("DEBUG", "INFO") else "warning",
        access_log=level in ("DEBUG", "INFO"),
        lifespan="on",
    )
    return 0
