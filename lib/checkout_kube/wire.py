"""Pure helpers of the client's wire format: selectors, descriptions, which verbs may be
sent twice, and the lines of a watch stream."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from checkout_kube import errors

Obj = dict[str, Any]


def selector(labels: Mapping[str, str] | str | None) -> str | None:
    """A label selector string from ``{key: value}`` (equality terms, sorted)."""
    if labels is None or isinstance(labels, str):
        return labels
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def idempotent(method: str) -> bool:
    """Whether sending ``method`` twice does no more than sending it once: every verb the client
    uses but POST (server-side apply and merge patches are idempotent; the compare-and-swap
    ones carry a resourceVersion, so a repeat after a lost answer gets a 409 at worst)."""
    return method != "POST"


def describe(api_version: str, kind: str, name: str | None, namespace: str | None) -> str:
    where = f"{namespace}/" if namespace else ""
    return f"{kind}.{api_version} {where}{name}" if name else f"{kind}.{api_version}"


def json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def watch_event(line: str, target: str, path: str) -> tuple[str, Obj]:
    """One line of a watch stream -> ``(type, object)``; an ERROR event raises its Status."""
    try:
        event = json.loads(line)
        type_ = str(event.get("type") or "")
        obj = event.get("object") or {}
        if not isinstance(obj, Mapping):
            raise TypeError("object is not a mapping")
    except (ValueError, TypeError, AttributeError) as exc:
        raise errors.UnreadableAnswer(f"{target}: an unreadable watch event") from exc
    if type_ == "ERROR":
        code = obj.get("code")
        status = code if isinstance(code, int) and code >= 400 else 500
        raise errors.from_response(status, obj, verb="WATCH", target=path)
    return type_, dict(obj)
