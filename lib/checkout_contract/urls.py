"""Where a credential or card data may be sent: the one URL rule of the API and the services.

A URL the operator's API accepts (a PSP ``endpoint``, ``gatewayUrl``, the tracing
``otlpEndpoint``, the gateway's ``jwksUrl``) and a URL the gateway sends a bearer token to (the
JWKS, peer gateways) must be ``https://``, with a host and without user information
(``https://user:pass@host`` puts a credential where every proxy, log line and status shows it).
Plain ``http://`` is accepted only for a loopback host (:data:`LOOPBACK_HOSTS`, or any
``127.0.0.0/8`` address): the local stack's PSP simulator, stripe-mock and collector run
there, and a loopback connection never leaves the host.

:data:`PATTERN` says the same to the apiserver (the CRDs' ``pattern``), :func:`problem` to
pydantic and the services, with a message that names what is wrong and never quotes the URL.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final
from urllib.parse import urlsplit

LOOPBACK_HOSTS: Final = frozenset({"localhost", "::1"})
"""Loopback host names besides the IPv4 loopback network 127.0.0.0/8."""

PATTERN: Final = (
    r"^(https://[^/?#@\s]+"
    r"|http://(localhost|127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}|\[::1\])(:[0-9]{1,5})?)"
    r"([/?#]\S*)?$"
)
"""The rule as a regular expression (the CRDs' ``pattern``; RE2 and Python agree on it)."""

RULE: Final = (
    "must be an https:// URL without user information (plain http:// only to a loopback host: "
    "127.0.0.0/8, ::1, localhost)"
)
"""The rule in words, for field descriptions and messages."""


def is_loopback(host: str) -> bool:
    """``localhost``, ``::1`` or an address of 127.0.0.0/8 (the hosts plain http may reach)."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return address.is_loopback


def problem(url: str, *, allow_loopback_http: bool = True) -> str | None:
    """What is wrong with ``url`` as a destination of credentials or card data, or None.

    ``allow_loopback_http=False`` is the stricter rule of a service that has no reason to talk
    to its own host (the gateway outside tests)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (parses the port: ValueError when it is not a number)
    except ValueError:
        return "is not a valid URL (bad host or port)"
    if any(c.isspace() for c in url):
        return "must not contain white space"
    if parts.scheme not in ("https", "http"):
        return RULE
    host = parts.hostname or ""
    if not host:
        return "has no host"
    if "@" in parts.netloc:
        return "must not carry user information (user:password@) in the URL"
    if parts.scheme == "http" and not (allow_loopback_http and is_loopback(host)):
        return RULE if allow_loopback_http else "must be an https:// URL"
    if re.fullmatch(PATTERN, url) is None:
        # what the apiserver checks (e.g. an upper-case scheme or host): the two never disagree
        return RULE
    return None
