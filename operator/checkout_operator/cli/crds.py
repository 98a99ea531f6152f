"""`checkout-operator crds`: the CustomResourceDefinitions, generated from the API models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from checkout_operator.cli import errors

HELP = "print (or write) the CRDs generated from the API models"
DESCRIPTION = """\
Generate the CheckoutRegion and PSPRoute CustomResourceDefinitions from the pydantic API
models: structural schemas with a description on every field (`kubectl explain` teaches the
API), printer columns, short names, the `checkout` category, the status subresource and the
CEL validation rules declared next to the model fields.
"""
EPILOG = """\
examples:
  checkout-operator crds | kubectl apply -f -          # install the CRDs
  checkout-operator crds --output-dir crds/            # regenerate the checked-in files
"""


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "crds",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--output-dir",
        metavar="DIR",
        help="write one file per CRD into DIR (created if missing) instead of stdout",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from checkout_operator.render import command

    documents = command.crd_documents()
    if args.output_dir is None:
        sys.stdout.write("".join(documents.values()))
        return errors.EXIT_OK
    out = Path(args.output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in documents.items():
            (out / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise errors.CliError(f"cannot write {out}: {exc.strerror or exc}") from None
    return errors.EXIT_OK
