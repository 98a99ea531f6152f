"""`checkout-operator flows`: which data replicates between which regions, as a table."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from checkout_operator.cli import errors, fleetargs

HELP = "print the replication flows residency allows (which topics cross which regions)"
DESCRIPTION = """\
Read CheckoutRegion (and PSPRoute) resources from YAML/JSON files, validate them offline like
`render`, and print one row per replication flow (SOURCE -> TARGET, the target pulls) and topic
family: what class of data it holds (personal, payment, aggregate), the markets whose topics
MirrorMaker 2 replicates into the target, and the markets it blocks with the jurisdictions
they allow. Aggregates replicate everywhere; personal and payment topics only where the
market's residency allows; dead-letter topics never leave their region.
"""
EPILOG = """\
examples:
  checkout-operator flows -f examples/
  checkout-operator flows -f examples/regions/ --region eu-west-1

On invalid input stderr lists each problem as `file: path.to.field: what is wrong` and the
exit code is 2.
"""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "flows",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fleetargs.add(parser, "only flows into or out of this region (repeatable)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from checkout_operator.render import command, inputs

    try:
        text = command.flows_paths(args.paths, args.regions)
    except inputs.InputError as exc:
        raise fleetargs.input_error(list(exc.messages)) from None
    sys.stdout.write(text)
    return errors.EXIT_OK
