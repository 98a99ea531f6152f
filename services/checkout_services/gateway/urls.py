"""Which URLs the gateway may send a credential to: the JWKS URL (the key material every token
is checked against) and the peer gateways (a forwarded write carries the client's bearer token).

Only ``https`` is accepted. The one exception is for tests on one machine: with
``GATEWAY_INSECURE_LOOPBACK=1`` plain ``http`` is allowed to a loopback host (``127.0.0.1``,
``::1``, ``localhost``) and nowhere else, so the switch can never open a path off the host.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Final
from urllib.parse import urlsplit

INSECURE_LOOPBACK_ENV: Final = "GATEWAY_INSECURE_LOOPBACK"


class InsecureURL(ValueError):
    """A URL the gateway refuses to send a credential to."""


def insecure_loopback_allowed() -> bool:
    return os.environ.get(INSECURE_LOOPBACK_ENV, "") in ("1", "true", "yes")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check(url: str, what: str, *, allow_loopback_http: bool | None = None) -> str:
    """``url`` if a credential may go there, else :class:`InsecureURL` naming ``what``."""
    allow = insecure_loopback_allowed() if allow_loopback_http is None else allow_loopback_http
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host:
        raise InsecureURL(f"{what} has no host")
    if parts.username or parts.password:
        raise InsecureURL(f"{what} must not carry credentials in the URL")
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and allow and is_loopback(host):
        return url
    hint = "" if allow else f" (tests on one host: {INSECURE_LOOPBACK_ENV}=1 allows loopback)"
    raise InsecureURL(f"{what} must be an https:// URL, got scheme {parts.scheme!r}{hint}")
