"""`checkout-operator render`: print what the operator would create, without a cluster."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from checkout_operator.cli import errors, fleetargs

HELP = "print the Kubernetes objects the operator would create from CRs in files"
DESCRIPTION = """\
Read CheckoutRegion and PSPRoute resources from YAML/JSON files (multi-document files and
directories allowed), validate them offline (schema, cross-field rules, data residency across
the fleet) and print every object the operator would create for every region as one YAML
stream, sorted by region, kind, namespace and name. Deterministic: the same input always
prints the same bytes, so it works as an Argo CD config-management plugin or in CI diffs.
"""
EPILOG = """\
examples:
  checkout-operator render -f examples/
  checkout-operator render -f examples/regions/eu-west-1.yaml -f examples/psproutes/
  checkout-operator render -f examples/ --region eu-west-1 | kubectl apply --dry-run=server -f -

On invalid input nothing is printed on stdout; stderr lists each problem as
`file: path.to.field: what is wrong` and the exit code is 2.
"""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "render",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fleetargs.add(
        parser, "print only this region's objects (repeatable; the whole fleet is still validated)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from checkout_operator.render import command, inputs

    try:
        text = command.render_paths(args.paths, args.regions)
    except inputs.InputError as exc:
        raise fleetargs.input_error(list(exc.messages)) from None
    sys.stdout.write(text)
    return errors.EXIT_OK
