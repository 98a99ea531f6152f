"""Which URLs the gateway may send a credential to: the JWKS URL (the key material every token
is checked against) and the peer gateways (a forwarded write carries the client's bearer token).

The rule is the one of the operator's API (:mod:`checkout_contract.urls`), stricter: only
``https`` is accepted. The one exception is for tests on one machine: with
``GATEWAY_INSECURE_LOOPBACK=1`` plain ``http`` is allowed to a loopback host (``127.0.0.0/8``,
``::1``, ``localhost``) and nowhere else, so the switch can never open a path off the host.
"""

from __future__ import annotations

import os
from typing import Final

from checkout_contract import urls

INSECURE_LOOPBACK_ENV: Final = "GATEWAY_INSECURE_LOOPBACK"


class InsecureURL(ValueError):
    """A URL the gateway refuses to send a credential to."""


def insecure_loopback_allowed() -> bool:
    return os.environ.get(INSECURE_LOOPBACK_ENV, "") in ("1", "true", "yes")


def check(url: str, what: str, *, allow_loopback_http: bool | None = None) -> str:
    """``url`` if a credential may go there, else :class:`InsecureURL` naming ``what``."""
    allow = insecure_loopback_allowed() if allow_loopback_http is None else allow_loopback_http
    wrong = urls.problem(url, allow_loopback_http=allow)
    if wrong is None:
        return url
    hint = "" if allow else f" (tests on one host: {INSECURE_LOOPBACK_ENV}=1 allows loopback)"
    raise InsecureURL(f"{what} {wrong}{hint}")
