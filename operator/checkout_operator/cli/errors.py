"""How CLI commands fail: a message on stderr and an exit code, never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]
Register = Callable[["argparse._SubParsersAction[Any]"], None]


class CliError(Exception):
    """An expected failure: printed as ``checkout-operator: <message>``, exits ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def run_guarded(handler: Handler, args: argparse.Namespace) -> int:
    try:
        return handler(args)
    except CliError as exc:
        print(f"checkout-operator: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("checkout-operator: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
