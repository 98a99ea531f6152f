"""`report`: collect CheckoutRegions, PSPRoutes, Events, Leases and the operator's logs into a
directory or a tarball, for an incident review or a bug report."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from checkout_operator.cli import errors
from checkout_operator.cli.verbs import cluster_args, creds_and_namespace, emit

EPILOG = """\
examples:
  checkout-operator report -n checkout                       # ./checkout-report-<time>.tar.gz
  checkout-operator report -A --operator-namespace checkout-system --dir /tmp/report
  checkout-operator report -n checkout -o json               # the summary of what was collected

exit codes: 0 collected (problems, e.g. no permission for logs, are listed in summary.json),
1 cluster unreachable, 2 bad usage
"""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "report",
        help="collect CRs, Events, Leases and operator logs into a tarball",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cluster_args(p)
    p.add_argument(
        "--operator-namespace", metavar="NS",
        help="where the operator's pods run (default: every namespace)",
    )  # fmt: skip
    out = p.add_mutually_exclusive_group()
    out.add_argument("--dir", metavar="DIR", help="write the files into DIR (no tarball)")
    out.add_argument(
        "--tarball",
        metavar="FILE",
        help="tarball path (default: ./checkout-report-<UTC time>.tar.gz)",
    )
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from checkout_kube import errors as kerrors
    from checkout_operator.reconcile import collect

    creds, ns = creds_and_namespace(args)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(args.dir) if args.dir else Path(tmp) / f"checkout-report-{stamp}"
        try:
            got = asyncio.run(collect.collect(creds, ns, args.operator_namespace))
            files = collect.write(got, dest, ns)
        except kerrors.KubeError as exc:
            raise errors.CliError(str(exc)) from exc
        except OSError as exc:
            raise errors.CliError(f"cannot write the report: {exc}") from exc
        where = str(dest)
        if not args.dir:
            tarball = Path(args.tarball or f"checkout-report-{stamp}.tar.gz")
            with tarfile.open(tarball, "w:gz") as tar:
                tar.add(dest, arcname=dest.name)
            where = str(tarball)
    record = {
        "output": where,
        "files": [str(f.relative_to(dest)) for f in files],
        "problems": got.problems,
    }
    lines = [f"report written to {where} ({len(files)} files)"]
    lines += [f"  not collected: {p}" for p in got.problems]
    emit(args, record, "\n".join(lines))
    sys.stdout.flush()
    return errors.EXIT_OK
