"""W3C Trace Context (``traceparent``): continue the caller's trace or start one; the gateway is
a span of its own, so the services behind it see the gateway as their parent."""

from __future__ import annotations

import re
import secrets
from typing import Final

HEADER: Final = "traceparent"
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE: Final = "0" * 32
_ZERO_SPAN: Final = "0" * 16


def child(incoming: str | None) -> str:
    """The ``traceparent`` to send on: same trace id and flags, a new span id (ours)."""
    if incoming:
        m = _TRACEPARENT.match(incoming.strip().lower())
        if m and m.group(1) != _ZERO_TRACE and m.group(2) != _ZERO_SPAN:
            return f"00-{m.group(1)}-{secrets.token_hex(8)}-{m.group(3)}"
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def trace_id(traceparent: str) -> str:
    return traceparent[3:35]
