"""Typed errors of the Kubernetes API, built from the apiserver's ``Status`` body.

Messages carry the apiserver's own text (kind, name, field causes), never request headers,
tokens or kubeconfig contents.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One field-level cause of an ``Invalid`` error (``status.details.causes[]``)."""

    field: str
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class KubeError(Exception):
    """A failure to talk to the cluster or an error answer from it."""


class ConfigError(KubeError):
    """The kubeconfig / in-cluster credentials are missing or unusable."""


class TransportError(KubeError):
    """The API server could not be reached (connection refused, TLS, timeout)."""

    def __init__(self, message: str, *, unsent: bool = False) -> None:
        super().__init__(message)
        self.unsent = unsent
        """True when the request never left (the connection could not be opened)."""


class UnreadableAnswer(KubeError):
    """The API server's answer (or a watch event) could not be read as what was asked for."""


class KindNotServed(KubeError):
    """The API server serves no such apiVersion/kind (e.g. a CRD that is not installed)."""

    def __init__(self, api_version: str, kind: str) -> None:
        super().__init__(f"the API server does not serve {kind} in {api_version}")
        self.api_version = api_version
        self.kind = kind


class ApiError(KubeError):
    """An error answer (status >= 400) of the API server."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        causes: tuple[Cause, ...] = (),
        verb: str = "",
        target: str = "",
    ) -> None:
        text = message or reason or f"HTTP {status}"
        if verb or target:
            text = f"{verb} {target}: {text}".strip()
        super().__init__(text)
        self.status = status
        self.reason = reason
        self.message = message
        self.causes = causes
        self.verb = verb
        self.target = target
        self.retry_after: float | None = None
        """Seconds from the server's Retry-After header, if it sent one."""


class BadRequest(ApiError):
    """400."""


class Unauthorized(ApiError):
    """401: the credentials were refused."""


class Forbidden(ApiError):
    """403: RBAC refused the request."""


class NotFound(ApiError):
    """404."""


class Conflict(ApiError):
    """409: a resourceVersion conflict, an apply conflict, or AlreadyExists."""


class Gone(ApiError):
    """410: e.g. an expired resourceVersion."""


class Invalid(ApiError):
    """422: the object failed validation; ``causes`` names the fields."""


class TooManyRequests(ApiError):
    """429."""


class ServerError(ApiError):
    """5xx."""


_BY_STATUS: Mapping[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}


def from_response(status: int, body: Any, *, verb: str = "", target: str = "") -> ApiError:
    """The typed error for an error answer; ``body`` is the decoded JSON (or anything else)."""
    reason = ""
    message = ""
    causes: tuple[Cause, ...] = ()
    if isinstance(body, Mapping) and body.get("kind") == "Status":
        reason = str(body.get("reason") or "")
        message = str(body.get("message") or "")
        details = body.get("details")
        if isinstance(details, Mapping):
            raw_causes = details.get("causes") or ()
            causes = tuple(
                Cause(
                    field=str(c.get("field") or ""),
                    reason=str(c.get("reason") or ""),
                    message=str(c.get("message") or ""),
                )
                for c in raw_causes
                if isinstance(c, Mapping)
            )
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return cls(status, reason, message, causes, verb=verb, target=target)
