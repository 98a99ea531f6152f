"""`plan`, `status` and `history`: failover from the command line (and `kubectl checkout`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from checkout_operator.cli import errors

PLAN_DESCRIPTION = """\
Show what a failover or a planned switchover would do, without doing it: per market the
steps (fence, drain, wait for replication lag 0, promote, re-render the routing), what blocks
it (no healthy legal target, lag budget, dwell, policy) and the residency check of each
candidate. From files (-f) or from a cluster (--context / --kubeconfig, reading the live
writers, leases, health and lag).
"""
PLAN_EPILOG = """\
examples:
  checkout-operator plan -f examples/regions/ --fail eu-west-1
  checkout-operator plan --context prod -n checkout --fail eu-west-1
  checkout-operator plan --context prod -n checkout      # the moves the specs ask for (drain)
"""


def _cluster_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig file to use")
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context to use")
    parser.add_argument(
        "-n", "--namespace", metavar="NS", help="namespace of the CheckoutRegions (default: the "
        "kubeconfig context's)",
    )  # fmt: skip


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "plan",
        help="show the plan of a failover or switchover without doing it",
        description=PLAN_DESCRIPTION,
        epilog=PLAN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-f", "--filename", dest="paths", action="append", default=[], metavar="FILE_OR_DIR",
        help="CheckoutRegion YAML files or directories (repeatable); else read the cluster",
    )  # fmt: skip
    p.add_argument("--fail", metavar="REGION", help="plan for this region failing its probes")
    _cluster_args(p)
    p.set_defaults(handler=handle_plan)

    s = subparsers.add_parser(
        "status",
        help="markets, writers, epochs, health and the last move of a cluster's fleet",
        description="A table of every market: writer, epoch, state, home region and its "
        "health, the last move and why.",
    )
    _cluster_args(s)
    s.set_defaults(handler=handle_status)

    h = subparsers.add_parser(
        "history",
        help="the recent moves of a region's markets, with evidence",
        description="The last moves of REGION's markets (newest first): time, markets, from, "
        "to, epoch, reason, actor and the probe evidence.",
    )
    h.add_argument("region", metavar="REGION", help="the region (spec.region or object name)")
    _cluster_args(h)
    h.set_defaults(handler=handle_history)


def _creds(args: argparse.Namespace) -> Any:
    from checkout_kube import errors as kerrors
    from checkout_operator.reconcile import runtime

    try:
        if args.context:
            from checkout_kube import config as kconfig

            return kconfig.load(args.kubeconfig, context=args.context)
        return runtime.credentials(args.kubeconfig)
    except kerrors.ConfigError as exc:
        raise errors.CliError(str(exc)) from None


def _namespace(args: argparse.Namespace, creds: Any) -> str:
    ns = args.namespace or creds.default_namespace
    if not ns:
        raise errors.CliError(
            "no namespace: pass -n NS (the kubeconfig context names none)", errors.EXIT_USAGE
        )
    return str(ns)


def _cluster_regions(args: argparse.Namespace) -> tuple[Any, str, list[Any]]:
    from checkout_kube import errors as kerrors
    from checkout_operator.reconcile import inspect

    creds = _creds(args)
    ns = _namespace(args, creds)
    try:
        regions = asyncio.run(inspect.read_regions(creds, ns))
    except kerrors.KubeError as exc:
        raise errors.CliError(str(exc)) from None
    return creds, ns, regions


def handle_plan(args: argparse.Namespace) -> int:
    from checkout_kube import errors as kerrors
    from checkout_operator.api.checkoutregion import CheckoutRegion
    from checkout_operator.failover import plan
    from checkout_operator.reconcile import inspect
    from checkout_operator.render import inputs

    leases: dict[str, Any] = {}
    if args.paths:
        try:
            items = inputs.load_paths(args.paths)
        except inputs.InputError as exc:
            raise errors.CliError("\n".join(exc.messages), errors.EXIT_USAGE) from None
        regions = [i.obj for i in items if isinstance(i.obj, CheckoutRegion)]
    else:
        creds, ns, regions = _cluster_regions(args)
        try:
            leases = asyncio.run(inspect.read_leases(creds, ns, {r.spec.fleet for r in regions}))
        except kerrors.KubeError as exc:
            raise errors.CliError(str(exc)) from None
    names = {r.spec.region for r in regions}
    if args.fail and args.fail not in names:
        raise errors.CliError(
            f"--fail: no region {args.fail} (regions: {', '.join(sorted(names)) or 'none'})",
            errors.EXIT_USAGE,
        )
    if not regions:
        raise errors.CliError("no CheckoutRegion found", errors.EXIT_USAGE)
    out = []
    for fleet in sorted({r.spec.fleet for r in regions}):
        members = [r for r in regions if r.spec.fleet == fleet]
        if args.fail and args.fail not in {r.spec.region for r in members}:
            continue
        steps = plan.plan(members, leases, failing=args.fail, now=time.time())
        scenario = f"fleet {fleet}: " + (
            f"region {args.fail} fails its probes" if args.fail else "moves the specs ask for"
        )
        out.append(plan.describe(steps, scenario))
    sys.stdout.write("".join(out))
    return errors.EXIT_OK


def handle_status(args: argparse.Namespace) -> int:
    from checkout_operator.failover import report

    _, ns, regions = _cluster_regions(args)
    if not regions:
        raise errors.CliError(f"no CheckoutRegion in namespace {ns}")
    sys.stdout.write(report.status_table(regions))
    return errors.EXIT_OK


def handle_history(args: argparse.Namespace) -> int:
    from checkout_operator.failover import report

    _, ns, regions = _cluster_regions(args)
    for r in regions:
        if args.region in (r.spec.region, r.metadata.name):
            sys.stdout.write(report.history_table(r))
            return errors.EXIT_OK
    raise errors.CliError(f"no CheckoutRegion {args.region} in namespace {ns}")
