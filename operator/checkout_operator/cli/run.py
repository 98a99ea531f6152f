"""`checkout-operator run`: start the operator (kopf) against a cluster."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from typing import Any

from checkout_operator.cli import errors

HELP = "run the operator: reconcile CheckoutRegions and PSPRoutes in a cluster"
DESCRIPTION = """\
Watch CheckoutRegion and PSPRoute resources and reconcile them into the checkout services'
Deployments, Services, ConfigMaps, autoscaling, disruption budgets, network policies and
MirrorMaker 2 replication, with server-side apply (field manager `checkout-operator`).
Children edited or deleted by hand are restored; a periodic resync catches what no watch saw.
"""
EPILOG = """\
examples:
  checkout-operator run --namespace checkout
  checkout-operator run --all-namespaces --metrics-port 9090 --kubeconfig ~/.kube/config

Credentials: --kubeconfig, else $KUBECONFIG, else the in-cluster service account.
Liveness: GET http://<pod>:<--health-port>/healthz. Metrics: http://<pod>:<--metrics-port>/metrics.
"""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "run",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (repeatable; default: the kubeconfig's namespace)",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    parser.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig file to use")
    parser.add_argument(
        "--metrics-port", type=int, default=9090, metavar="N", help="Prometheus port (0: off)"
    )
    parser.add_argument(
        "--health-port", type=int, default=8081, metavar="N", help="liveness port (0: off)"
    )
    parser.add_argument(
        "--drift-interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="periodic resync of every CheckoutRegion (default 60)",
    )
    parser.add_argument(
        "--max-concurrent-reconciles",
        type=int,
        default=None,
        metavar="N",
        help="CheckoutRegions reconciled at once (default 8)",
    )
    parser.add_argument(
        "--no-failover",
        action="store_true",
        help="do not probe regions nor move markets (default: failover on; with several "
        "replicas only the holder of the leader Lease checkout-operator-failover acts)",
    )
    parser.add_argument(
        "--failover-tick",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="how often the failover engine re-reads leases between probes (default 0.5)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.set_defaults(handler=run)


def _port(value: int, flag: str) -> int:
    if not 0 <= value <= 65535:
        raise errors.CliError(f"{flag}: {value} is not a port (0-65535)", errors.EXIT_USAGE)
    return value


def run(args: argparse.Namespace) -> int:
    from checkout_kube import errors as kerrors
    from checkout_operator import metrics
    from checkout_operator.reconcile import runtime

    metrics_port = _port(args.metrics_port, "--metrics-port")
    health_port = _port(args.health_port, "--health-port")
    if args.drift_interval <= 0:
        raise errors.CliError("--drift-interval: must be > 0 seconds", errors.EXIT_USAGE)
    max_concurrent = args.max_concurrent_reconciles
    if max_concurrent is None:
        max_concurrent = runtime.DEFAULT_MAX_CONCURRENT
    if max_concurrent < 1:
        raise errors.CliError("--max-concurrent-reconciles: must be at least 1", errors.EXIT_USAGE)
    if args.failover_tick <= 0:
        raise errors.CliError("--failover-tick: must be > 0 seconds", errors.EXIT_USAGE)
    try:
        creds = runtime.credentials(args.kubeconfig)
    except kerrors.ConfigError as exc:
        raise errors.CliError(str(exc)) from None
    namespaces: list[str] = list(args.namespace)
    if not args.all_namespaces and not namespaces:
        if not creds.default_namespace:
            raise errors.CliError(
                "no namespace to watch: pass --namespace NS or --all-namespaces "
                "(the kubeconfig's context names none)",
                errors.EXIT_USAGE,
            )
        namespaces = [creds.default_namespace]

    # The handlers read their settings at import time.
    os.environ["CHECKOUT_OPERATOR_DRIFT_INTERVAL"] = str(args.drift_interval)
    os.environ["CHECKOUT_OPERATOR_FAILOVER"] = "0" if args.no_failover else "1"
    os.environ["CHECKOUT_OPERATOR_FAILOVER_TICK"] = str(args.failover_tick)
    import kopf

    from checkout_operator import handlers

    kopf.configure(verbose=args.verbose)
    if not args.verbose:
        # One line per API request / liveness probe drowns what the operator did.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if metrics_port:
        try:
            metrics.serve(metrics_port)
        except OSError as exc:
            raise errors.CliError(f"--metrics-port {metrics_port}: {exc.strerror}") from None
    memo = kopf.Memo(
        kubeconfig=args.kubeconfig,
        namespaces=None if args.all_namespaces else namespaces,
        max_concurrent=max_concurrent,
    )
    liveness = f"http://0.0.0.0:{health_port}/healthz" if health_port else None
    asyncio.run(
        kopf.operator(
            registry=kopf.get_default_registry(),
            clusterwide=bool(args.all_namespaces),
            namespaces=namespaces,
            standalone=True,
            liveness_endpoint=liveness,
            memo=memo,
        )
    )
    del handlers
    return errors.EXIT_OK
