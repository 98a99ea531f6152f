"""`switchover`, `drain`, `return-home`, `pause`, `resume`: imperative failover requests.

Each writes one request (annotation ``checkout-operator.io/request``, a fresh id) on the
CheckoutRegion; the operator judges it with the failover plan and records the outcome in
``status.request`` -- the same path as the Argo CD resource actions. The spec is not edited, so
Argo CD self-heal neither reverts nor repeats it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from checkout_operator.cli import errors

EXIT_REFUSED = 3
EXIT_NOT_CONFIRMED = 4
EXIT_NO_ANSWER = 5

EXIT_CODES = """\
exit codes: 0 accepted (with --dry-run: would be accepted), 1 cluster unreachable or another
runtime failure, 2 bad usage or no such region, 3 refused by the operator (the reason is
printed), 4 not confirmed, 5 the operator did not answer within --timeout (is it running?)
"""

VERBS: dict[str, tuple[str, str]] = {
    "switchover": (
        "move the markets a region writes to a target region (planned: drain, lag 0, flip)",
        "checkout-operator switchover eu-west-1 --to eu-central-1 -n checkout",
    ),
    "drain": (
        "move the markets a region writes to its first healthy legal failover target",
        "checkout-operator drain eu-west-1 -n checkout --dry-run",
    ),
    "return-home": (
        "move a region's home markets back to it (clears a drain/switchover request)",
        "checkout-operator return-home eu-west-1 -n checkout --yes",
    ),
    "pause": (
        "pause automatic failover of a region's markets (moves only on request or spec edit)",
        "checkout-operator pause eu-west-1 -n checkout --yes -o json",
    ),
    "resume": (
        "resume automatic failover of a region's markets",
        "checkout-operator resume eu-west-1 -A --yes",
    ),
}


def cluster_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig file to use")
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context to use")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", metavar="NS", help="namespace (default: context's)")
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="look in every namespace"
    )
    parser.add_argument(
        "-o", "--output", choices=("text", "json", "yaml"), default="text", help="output format"
    )


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    for verb, (summary, example) in VERBS.items():
        p = subparsers.add_parser(
            verb,
            help=summary,
            description=f"{summary[0].upper()}{summary[1:]}.\n\n{__doc__.split(chr(10), 2)[2]}",
            epilog=f"example:\n  {example}\n\n{EXIT_CODES}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("region", metavar="REGION", help="CheckoutRegion (name or spec.region)")
        if verb in ("switchover", "drain"):
            p.add_argument(
                "--to", dest="target", metavar="REGION", required=verb == "switchover",
                default="", help="target region" + (" (default: the plan's)" * (verb == "drain")),
            )  # fmt: skip
        cluster_args(p)
        p.add_argument(
            "--dry-run", action="store_true", help="print the plan and the verdict; change nothing"
        )
        p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
        p.add_argument(
            "--timeout", type=float, default=60.0, metavar="SECONDS",
            help="how long to wait for the operator's verdict (default 60)",
        )  # fmt: skip
        p.set_defaults(handler=handle, verb=verb)


def creds_and_namespace(args: argparse.Namespace) -> tuple[Any, str | None]:
    from checkout_kube import config as kconfig
    from checkout_kube import errors as kerrors

    try:
        creds = kconfig.load(args.kubeconfig, context=args.context)
    except kerrors.ConfigError as exc:
        raise errors.CliError(str(exc)) from exc
    if args.all_namespaces:
        return creds, None
    ns = args.namespace or creds.default_namespace
    if not ns:
        raise errors.CliError("no namespace: pass -n NS or -A", errors.EXIT_USAGE)
    return creds, str(ns)


def emit(args: argparse.Namespace, record: dict[str, Any], text: str) -> None:
    if args.output == "json":
        sys.stdout.write(json.dumps(record, indent=2) + "\n")
    elif args.output == "yaml":
        import yaml

        sys.stdout.write(yaml.safe_dump(record, sort_keys=False))
    else:
        sys.stdout.write(text + "\n")


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise errors.CliError(
            "not a terminal: pass --yes to send the request without confirmation",
            EXIT_NOT_CONFIRMED,
        )
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def handle(args: argparse.Namespace) -> int:
    from checkout_kube import errors as kerrors
    from checkout_operator.reconcile import submit

    creds, ns = creds_and_namespace(args)
    target = getattr(args, "target", "") or ""
    req = submit.new_request(args.verb, target, "kubectl-checkout")
    try:
        at = asyncio.run(submit.locate(creds, ns, args.region))
        verdict = asyncio.run(submit.preview(creds, at, req))
    except submit.NotFound as exc:
        raise errors.CliError(str(exc), errors.EXIT_USAGE) from exc
    except kerrors.KubeError as exc:
        raise errors.CliError(str(exc)) from exc
    where = f"{at.namespace}/{at.name}"
    plan = {
        "region": where,
        "action": args.verb,
        "target": target,
        "wouldBe": verdict.outcome,
        "message": verdict.message,
    }
    if args.dry_run:
        emit(args, plan, f"{args.verb} {where}: would be {verdict.outcome}: {verdict.message}")
        return errors.EXIT_OK if verdict.outcome == "Accepted" else EXIT_REFUSED
    if not args.yes:
        sys.stderr.write(f"plan: {verdict.message}\n")
        if not _confirm(f"Send {args.verb} {target} to {where}?".replace("  ", " ")):
            sys.stderr.write("not sent\n")
            return EXIT_NOT_CONFIRMED
    try:
        record = asyncio.run(submit.submit(creds, at, req, args.timeout))
    except kerrors.KubeError as exc:
        raise errors.CliError(str(exc)) from exc
    if record is None:
        raise errors.CliError(
            f"request {req.id} written on {where}, but the operator recorded no verdict within "
            f"{args.timeout:g} s (is it running? `kubectl checkout report` collects its logs)",
            EXIT_NO_ANSWER,
        )
    emit(args, record, f"{args.verb} {where}: {record['outcome']}: {record['message']}")
    return errors.EXIT_OK if record["outcome"] == "Accepted" else EXIT_REFUSED
