"""`checkout-operator run`: start the operator (kopf) against a cluster."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from typing import TYPE_CHECKING, Any

from checkout_operator.cli import errors

if TYPE_CHECKING:
    from checkout_operator.reconcile import election as election_t
    from checkout_operator.reconcile import leader as leader_t

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

  checkout-operator run -A --leader-elect --leader-election-namespace checkout-operator-system

Credentials: --kubeconfig, else $KUBECONFIG, else the in-cluster service account.
Liveness: GET http://<pod>:<--health-port>/healthz; readiness: /readyz (leading and serving, or
standing by with the leader Lease in reach). Metrics: http://<pod>:<--metrics-port>/metrics.
With --leader-elect only the holder of the Lease --leader-election-id works (watches,
reconciles, fails over); the others stand by. A leader that loses its Lease exits (code 1) and
restarts as a standby.
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
    election = parser.add_argument_group("leader election (several replicas)")
    election.add_argument(
        "--leader-elect",
        action="store_true",
        help="work only while holding the leader Lease (reconcile and failover); stand by else",
    )
    election.add_argument(
        "--leader-election-id",
        default="checkout-operator",
        metavar="NAME",
        help="the Lease's name (default checkout-operator)",
    )
    election.add_argument(
        "--leader-election-namespace",
        metavar="NS",
        help="the Lease's namespace (default: $POD_NAMESPACE, else the first watched namespace)",
    )
    election.add_argument(
        "--lease-duration",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="how long a Lease not renewed stays the holder's (default 15)",
    )
    election.add_argument(
        "--lease-retry",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how often replicas renew or try to take over the Lease (default 2)",
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
    from checkout_operator.reconcile import election, runtime

    metrics_port = _port(args.metrics_port, "--metrics-port")
    health_port = _port(args.health_port, "--health-port")
    if args.drift_interval <= 0:
        raise errors.CliError("--drift-interval: must be > 0 seconds", errors.EXIT_USAGE)
    max_concurrent = args.max_concurrent_reconciles
    if max_concurrent is None:
        max_concurrent = runtime.DEFAULT_MAX_CONCURRENT
    if max_concurrent < 1:
        raise errors.CliError("--max-concurrent-reconciles: must be at least 1", errors.EXIT_USAGE)
    if args.leader_elect and not args.lease_duration > args.lease_retry + 1 > 1:
        raise errors.CliError(
            "--lease-duration must exceed --lease-retry + 1 s (the clock-skew margin), "
            "and --lease-retry must be > 0",
            errors.EXIT_USAGE,
        )
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
    elected = None
    if args.leader_elect:
        ns = (
            args.leader_election_namespace
            or os.environ.get("POD_NAMESPACE")
            or (namespaces[0] if namespaces else creds.default_namespace)
            or "default"
        )
        elected = runtime.build_leader(
            args.kubeconfig,
            ns,
            args.leader_election_id,
            duration=args.lease_duration,
            retry=args.lease_retry,
        )
        memo.leader = elected

    async def work(stop: asyncio.Event, ready: asyncio.Event) -> None:
        await kopf.operator(
            registry=kopf.get_default_registry(),
            clusterwide=bool(args.all_namespaces),
            namespaces=namespaces,
            standalone=True,
            memo=memo,
            stop_flag=stop,
            ready_flag=ready,
        )

    outcome = asyncio.run(_serve(elected, work, health_port))
    del handlers
    if outcome == election.LOST:
        raise errors.CliError(
            f"lost the leader Lease {args.leader_election_id}: exiting to restart as a standby"
        )
    return errors.EXIT_OK


async def _serve(
    elected: leader_t.Leader | None, work: election_t.Work, health_port: int
) -> election_t.Outcome:
    """The health endpoints, then the election (or the work at once without one)."""
    from checkout_operator.reconcile import election

    status = election.Status(elected)
    server = election.HealthServer(status, health_port) if health_port else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # while standing by (kopf installs its own)
        loop.add_signal_handler(sig, stop.set)
    try:
        if server is not None:
            try:
                await server.start()
            except OSError as exc:
                raise errors.CliError(f"--health-port {health_port}: {exc.strerror}") from None
        return await election.run_elected(elected, work, status, stop)
    finally:
        if server is not None:
            await server.aclose()
        if elected is not None:
            await elected.client.aclose()
