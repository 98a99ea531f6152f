"""`checkout-services NAME`: run one of the checkout services or their tools."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import checkout_services


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="checkout-services",
        description="Run one of the async checkout services (or a tool that goes with them).",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {checkout_services.__version__}"
    )
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return 2
    code: int = args.handler(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
