"""What `render` and `flows` share: the fleet-file arguments and the input-error message."""

from __future__ import annotations

import argparse

from checkout_operator.cli import errors


def add(parser: argparse.ArgumentParser, region_help: str) -> None:
    """``-f/--filename`` (repeatable, required) and ``--region`` (repeatable)."""
    parser.add_argument(
        "-f",
        "--filename",
        dest="paths",
        action="append",
        required=True,
        metavar="FILE_OR_DIR",
        help="file or directory of CheckoutRegion/PSPRoute YAML (repeatable)",
    )
    parser.add_argument(
        "--region",
        dest="regions",
        action="append",
        default=[],
        metavar="NAME",
        help=region_help,
    )


def input_error(messages: list[str]) -> errors.CliError:
    """Every problem of the input on its own line (a count first when there are several)."""
    lines = list(messages)
    if len(lines) > 1:
        lines.insert(0, f"{len(lines)} problems in the input:")
    return errors.CliError("\n".join(lines), errors.EXIT_USAGE)
