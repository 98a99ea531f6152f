"""`kubectl checkout`: the kubectl plugin entry point (installed as `kubectl-checkout`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from checkout_operator.cli import main as cli_main


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main.main(argv, prog="kubectl checkout")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
