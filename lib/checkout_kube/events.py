"""The body of a core/v1 Event (what :meth:`KubeClient.post_event` sends)."""

from __future__ import annotations

import datetime
import socket
from collections.abc import Mapping
from typing import Any, Final

from checkout_contract import timeutil

MESSAGE_LIMIT: Final = 1024


def namespace_of(involved: Mapping[str, Any]) -> str | None:
    meta = involved.get("metadata") or {}
    return meta.get("namespace") or None


def event_body(
    involved: Mapping[str, Any],
    *,
    namespace: str,
    type_: str,
    reason: str,
    message: str,
    action: str,
    component: str,
    now: datetime.datetime,
) -> dict[str, Any]:
    """An Event about ``involved`` (an object with apiVersion, kind, metadata); a message
    longer than ``MESSAGE_LIMIT`` is cut."""
    meta = involved.get("metadata") or {}
    stamp = timeutil.rfc3339(now)
    if len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT - 3] + "..."
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name', 'object')}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message,
        "action": action,
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": socket.gethostname()[:128],
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
