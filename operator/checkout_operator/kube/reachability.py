"""Why a remote cluster cannot be reached, in words: DNS, TLS, 401/403, timeout, refused.

:func:`classify` maps a ``checkout_kube`` error (and the network error it was raised from) to a
``Reachability``: a CamelCase reason for the ``RemoteClusterReachable`` condition and a message
a person can act on. Messages name the failure, never credentials or the kubeconfig's content.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from checkout_kube import errors

REACHABLE: Final = "Reachable"


@dataclass(frozen=True)
class Reachability:
    """The outcome of one attempt to talk to a remote cluster."""

    reachable: bool
    reason: str
    message: str


OK: Final = Reachability(True, REACHABLE, "the remote cluster's API server answers")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling (each once)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]


def _network_reason(exc: BaseException) -> tuple[str, str] | None:
    for cause in _chain(exc):
        text = str(cause)
        if isinstance(cause, ssl.SSLError) or "SSL" in text or "CERTIFICATE" in text.upper():
            return "TLSError", "the TLS handshake failed (certificate or CA does not match)"
        if isinstance(cause, socket.gaierror) or "Name or service not known" in text:
            return "DNSError", "the API server's host name does not resolve (DNS)"
        if isinstance(cause, ConnectionRefusedError) or "refused" in text.lower():
            return "ConnectionRefused", "the API server refused the connection (not listening)"
        if isinstance(cause, TimeoutError) or "timed out" in text.lower():
            return "Timeout", "the API server did not answer in time (timeout)"
        if "All connection attempts failed" in text:
            return "ConnectionRefused", "the API server refused the connection (not listening)"
    return None


def classify(exc: errors.KubeError) -> Reachability:
    """The reason, in words, that ``exc`` says the remote cluster is not usable."""
    if isinstance(exc, errors.ConfigError):
        return Reachability(False, "KubeconfigUnusable", str(exc))
    if isinstance(exc, errors.Unauthorized):
        return Reachability(
            False, "Unauthorized", "the API server refused the credentials (401 Unauthorized)"
        )
    if isinstance(exc, errors.Forbidden):
        return Reachability(
            False, "Forbidden", f"the credentials lack a permission (403 Forbidden): {exc}"
        )
    if isinstance(exc, errors.TransportError):
        found = _network_reason(exc)
        if found is not None:
            return Reachability(False, found[0], f"{found[1]}: {exc}")
        if "timed out" in str(exc):
            return Reachability(False, "Timeout", f"the API server did not answer in time: {exc}")
        return Reachability(False, "Unreachable", f"the API server cannot be reached: {exc}")
    if isinstance(exc, errors.ServerError):
        return Reachability(False, "ServerError", f"the API server answers with an error: {exc}")
    # any other answer (404, 409, 422...) came from a live, authenticated API server
    return OK
