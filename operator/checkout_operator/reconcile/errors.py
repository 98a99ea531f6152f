"""Errors of the reconcile layer."""

from __future__ import annotations


class InvalidSpec(Exception):
    """A spec the CRD schema could not reject: permanent until the spec changes.

    ``field`` is the path of the offending field (``spec.failover.targets[0]``).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
