"""``checkout-services privacy erase CUSTOMER``: GDPR erasure in the home region.

Runs against the orders database of the customer's home region (``DATABASE_URL``) and the
region config (``REGION_CONFIG_FILE``, for topic names). The tombstone goes out through the
outbox (the orders service's relay, or ``checkout-services outbox-relay``); every region allowed
to hold a copy applies it. Exit 0: erased (or already erased); 1: no such customer here or the
database is unreachable; 2: bad arguments or settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from checkout_contract import env
from checkout_services.common import db, settings


def add_parser(sub: Any) -> None:
    privacy = sub.add_parser(
        "privacy",
        help="GDPR tools: erase a customer's personal data (env: DATABASE_URL)",
        description="Erase a customer's personal data in its home region and, by a tombstone "
        "event, in every region allowed to hold a copy. Orders keep their amounts and tax.",
    )
    psub = privacy.add_subparsers(dest="privacy_command", metavar="ACTION", required=True)
    erase = psub.add_parser(
        "erase",
        help="erase one customer (run in the customer's home region)",
        description="Delete the customer's profile, anonymise its orders, publish the tombstone.",
    )
    erase.add_argument("customer", help="the customer id")
    erase.set_defaults(handler=_erase)


def _erase(args: argparse.Namespace) -> int:
    from checkout_services.orders import privacy

    try:
        dsn = settings.env_str(env.DATABASE_URL)
        region = settings.load_region_config(settings.env_str(env.REGION_CONFIG_FILE))
    except settings.SettingsError as exc:
        print(f"checkout-services privacy erase: {exc}", file=sys.stderr)
        return 2

    async def run() -> privacy.Erased:
        pool = await db.create_pool(dsn, min_size=1, max_size=2)
        try:
            await db.migrate(pool, db.COMMON_MIGRATIONS, "checkout_services.orders.migrations")
            return await privacy.erase(pool, region, args.customer)
        finally:
            await pool.close()

    try:
        done = asyncio.run(run())
    except privacy.UnknownCustomer as exc:
        print(f"checkout-services privacy erase: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        print(
            f"checkout-services privacy erase: database unreachable ({type(exc).__name__})",
            file=sys.stderr,
        )
        return 1
    print(
        json.dumps(
            {
                "erased": not done.already,
                "alreadyErased": done.already,
                "market": done.market,
                "ordersAnonymised": done.orders_anonymised,
                "outboxRowsDeleted": done.outbox_rows_deleted,
            }
        )
    )
    return 0
