"""`checkout-services NAME`: run one of the checkout services or their tools."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import checkout_services
from checkout_contract import config as region_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="checkout-services",
        description="Run one of the async checkout services (or a tool that goes with them).",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {checkout_services.__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    payments = sub.add_parser(
        "payments",
        help="run the payments service (env: DATABASE_URL, REDIS_URL, PSP_ROUTING_FILE)",
        description="Run the payments service with uvicorn. Settings come from env vars "
        "(DATABASE_URL, REDIS_URL, PSP_ROUTING_FILE, PAYMENTS_*); PSP credentials from the "
        "files in each provider's credentials_dir.",
    )
    payments.add_argument("--host", default="127.0.0.1")
    payments.add_argument("--port", type=_port, default=region_config.SERVICE_PORT)
    payments.set_defaults(handler=_run_payments)

    sim = sub.add_parser(
        "psp-sim",
        help="run the PSP simulator (Stripe-like, Adyen-like, UPI, iDEAL, Pix)",
        description="Run the PSP simulator: provider APIs under /<endpoint>/<provider>/..., "
        "admin API (accounts, faults, ledger) under /_sim/.",
    )
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=_port, default=8099)
    sim.add_argument("--seed", type=int, default=0, help="seed for fault injection")
    sim.set_defaults(handler=_run_sim)

    for name, what in DOMAIN_SERVICES.items():
        svc = sub.add_parser(
            name,
            help=f"run the {name} service ({what})",
            description=f"Run the {name} service with uvicorn. Settings come from env vars "
            "(REGION_CONFIG_FILE, FLEET_ROUTING_FILE, DATABASE_URL, REDIS_URL, "
            "KAFKA_BOOTSTRAP_SERVERS, ...): see docs/services.md.",
        )
        svc.add_argument("--host", default="127.0.0.1")
        svc.add_argument("--port", type=_port, default=region_config.SERVICE_PORT)
        svc.set_defaults(handler=_run_domain, service=name)

    from checkout_services.common import dlq

    dlq.add_parser(sub)

    from checkout_services.orders import privacy_cli

    privacy_cli.add_parser(sub)

    relay = sub.add_parser(
        "outbox-relay",
        help="relay a service's outbox to Kafka (env: DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS)",
        description="Publish the unpublished outbox rows of one service database to Kafka, "
        "at least once, forever (run the service with OUTBOX_RELAY=0).",
    )
    relay.set_defaults(handler=_run_relay)
    return parser


def _run_relay(args: argparse.Namespace) -> int:
    from checkout_services.common import relay_main

    return relay_main.run()


DOMAIN_SERVICES = {
    "cart": "carts in Redis with a TTL",
    "pricing": "quotes, promotions, tax, shipping, snapshots",
    "inventory": "stock reservations with a TTL",
    "orders": "checkout sagas on Temporal, orders, outbox",
    "gateway": "the region's entry: JWT auth, rate limits, routing writes to the writer region",
}


def _run_domain(args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(f"checkout_services.{args.service}.main")
    code: int = module.run(host=args.host, port=args.port)
    return code


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {raw!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port out of range: {port}")
    return port


def _run_payments(args: argparse.Namespace) -> int:
    from checkout_services.payments import main as payments_main

    return payments_main.run(host=args.host, port=args.port)


def _run_sim(args: argparse.Namespace) -> int:
    from checkout_services.psp_sim import main as sim_main

    return sim_main.run(host=args.host, port=args.port, seed=args.seed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "privacy":
        code: int = args.handler(args)
        return code
    if args.command == "dlq":
        from checkout_services.common import dlq

        return dlq.run(args)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
