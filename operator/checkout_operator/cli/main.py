"""`checkout-operator`: the operator's command line.

Each subcommand lives in its own module with ``register(subparsers)``; this module only wires
them together and turns expected failures into a message and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import checkout_operator
from checkout_operator.cli import errors

DESCRIPTION = """\
Run and inspect a multi-region e-commerce checkout on Kubernetes.

CheckoutRegion and PSPRoute custom resources describe the fleet; the operator reconciles
them into the checkout services, MirrorMaker 2 replication, payment routing and failover
routing. The subcommands below work offline (render, crds) or against a cluster (run).
"""

EPILOG = """\
examples:
  checkout-operator render -f examples/          # what the operator would create, as YAML
  checkout-operator crds --output-dir crds/      # regenerate the CRDs from the API models
  checkout-operator flows -f examples/           # which data replicates where (residency)

  checkout-operator switchover eu-west-1 --to eu-central-1 -n checkout --dry-run
  checkout-operator report -n checkout                  # CRs, Events, Leases, logs: tarball

Exit codes: 0 ok, 1 runtime failure, 2 invalid input (the message names the field);
the request verbs add 3 refused, 4 not confirmed, 5 no answer (see their --help).
"""


def build_parser(prog: str = "checkout-operator") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {checkout_operator.__version__}"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _subcommands():
        register(subparsers)
    if prog != "checkout-operator":  # e.g. `kubectl checkout`: its examples say so
        parser.epilog = (parser.epilog or "").replace("checkout-operator ", f"{prog} ")
        for sub in subparsers.choices.values():
            sub.epilog = (sub.epilog or "").replace("checkout-operator ", f"{prog} ") or None
    return parser


def _subcommands() -> list[errors.Register]:
    # Each subcommand module imports its heavy dependencies inside its handler, so that
    # `--help` of one command never pays for another's imports.
    from checkout_operator.cli import crds, render, verbs
    from checkout_operator.cli import failover as failover_cmd
    from checkout_operator.cli import flows as flows_cmd
    from checkout_operator.cli import report as report_cmd
    from checkout_operator.cli import run as run_cmd

    return [
        render.register,
        crds.register,
        run_cmd.register,
        flows_cmd.register,
        failover_cmd.register,
        verbs.register,
        report_cmd.register,
    ]


def main(argv: Sequence[str] | None = None, prog: str = "checkout-operator") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    handler: errors.Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return errors.EXIT_USAGE
    return errors.run_guarded(handler, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
