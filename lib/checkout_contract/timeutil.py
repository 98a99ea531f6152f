"""UTC timestamps in the forms Kubernetes writes (``Time`` and ``MicroTime``), in one place."""

from __future__ import annotations

import datetime


def micro_time(at: float) -> str:
    """Kubernetes MicroTime (RFC 3339 with microseconds, UTC) of the epoch seconds ``at``."""
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339(at: datetime.datetime | float) -> str:
    """Kubernetes Time (RFC 3339, whole seconds, UTC)."""
    if not isinstance(at, datetime.datetime):
        at = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> float | None:
    """Epoch seconds of an RFC 3339 time (``Z`` or an offset); None for an empty value.

    Raises ValueError for text that is not a time: the caller decides what a bad value means.
    """
    if not text:
        return None
    parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()
