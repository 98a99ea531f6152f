"""``checkout-services outbox-relay``: the outbox relay alone (env: DATABASE_URL,
KAFKA_BOOTSTRAP_SERVERS, REGION_CONFIG_FILE for the topics it creates), for a service run with
``OUTBOX_RELAY=0``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

import checkout_tasks
from checkout_contract import config, env
from checkout_services.common import db, outbox, settings, tracing

log = logging.getLogger("checkout_services.outbox")


async def relay_forever(dsn: str, bootstrap: str, region: config.RegionConfig) -> None:
    pool = await db.create_pool(dsn, min_size=1, max_size=2)
    relay = outbox.Relay.for_region(pool, bootstrap, region)
    task = checkout_tasks.start(
        "outbox relay", relay.run, policy=checkout_tasks.Policy(finishable=False), logger=log
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task.wait()
    finally:
        await relay.stop()
        await pool.close()


def run() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    try:
        dsn = settings.env_str(env.DATABASE_URL)
        bootstrap = settings.env_str(env.KAFKA_BOOTSTRAP_SERVERS)
        region = settings.load_region_config(settings.env_str(env.REGION_CONFIG_FILE))
        tracing.setup("outbox-relay")  # off unless OTEL_EXPORTER_OTLP_ENDPOINT is set
    except settings.SettingsError as exc:
        print(f"checkout-services outbox-relay: {exc}", file=sys.stderr)
        return 2
    asyncio.run(relay_forever(dsn, bootstrap, region))
    return 0
