"""Who a request is for, as the gateway vouches for it: the tenant binding of the services.

The gateway verifies the client's bearer token and passes the principal (the token's ``sub``,
percent-encoded: :func:`header_value`) on in ``X-Checkout-Principal``, with
``X-Checkout-Principal-Sig``: an HMAC-SHA256, under a key only the gateway and the services
hold (``CHECKOUT_GATEWAY_KEY``, from a Secret), over

    v1 \\n <unix time> \\n <METHOD> \\n <raw path?query> \\n <principal> \\n <sha256(body)>

so the header cannot be forged, moved to another request, another body or another principal,
or replayed later than :data:`MAX_SKEW_S`. A service route that serves clients declares
:data:`CallerDep`: without a valid signature it answers 401, so a request that did not come
through the gateway is refused. Why an HMAC rather than mTLS: it needs no certificate
authority, works through any proxy or port-forward, binds the principal to the exact request
(mTLS only says which *peer* sent it, not for whom) and costs one hash per request.

The services store and compare :attr:`Caller.tag` (a keyed hash of the principal, so no
subject id lands in a table, a workflow history or Redis): idempotency keys, checkout ids and
customer ids are scoped by it.

``CHECKOUT_GATEWAY_AUTH=off`` turns the check off (tests that call a service directly, never
a deployment): the caller then has no tag and nothing is scoped.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final
from urllib.parse import quote

from fastapi import Depends, Request

from checkout_contract import env
from checkout_services.common import errors, settings

PRINCIPAL_HEADER: Final = "x-checkout-principal"
SIGNATURE_HEADER: Final = "x-checkout-principal-sig"
PRINCIPAL_HEADER_RAW: Final = PRINCIPAL_HEADER.encode()
SIGNATURE_HEADER_RAW: Final = SIGNATURE_HEADER.encode()
KEY_ENV: Final = env.GATEWAY_KEY
SWITCH_ENV: Final = "CHECKOUT_GATEWAY_AUTH"
MAX_SKEW_S: Final = 60
MIN_KEY_BYTES: Final = 32
INTERNAL_PREFIX: Final = "internal/"


class NotFromGateway(errors.ProblemError):
    status, slug, title = 401, "not-from-gateway", "Request did not come through the gateway"


@dataclass(frozen=True)
class Caller:
    tag: str | None
    """Keyed hash of the principal; None when the check is off."""


def load_key() -> bytes | None:
    """The shared key; None only when ``CHECKOUT_GATEWAY_AUTH=off``. A missing or short key is
    a settings error (the service does not start)."""
    if os.environ.get(SWITCH_ENV, "").lower() == "off":
        return None
    raw = os.environ.get(KEY_ENV, "")
    if not raw:
        raise settings.SettingsError(
            f"missing {KEY_ENV}: the key the gateway signs principals with (a Secret shared by "
            f"the gateway and the services); {SWITCH_ENV}=off only for tests"
        )
    key = raw.encode()
    if len(key) < MIN_KEY_BYTES:
        raise settings.SettingsError(f"{KEY_ENV} must be at least {MIN_KEY_BYTES} bytes")
    return key


def header_value(subject: str) -> str:
    """The principal as it travels in a header (ASCII whatever the ``sub`` holds)."""
    return quote(subject, safe="@._-:")


def _mac(key: bytes, ts: int, method: str, target: str, principal: str, body: bytes) -> str:
    message = "\n".join(
        ("v1", str(ts), method.upper(), target, principal, hashlib.sha256(body).hexdigest())
    )
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def sign(
    key: bytes, method: str, target: str, principal: str, body: bytes, now: float | None = None
) -> str:
    """The ``X-Checkout-Principal-Sig`` value for this request."""
    ts = int(time.time() if now is None else now)
    return f"v1,{ts},{_mac(key, ts, method, target, principal, body)}"


def verify(
    key: bytes,
    method: str,
    target: str,
    principal: str,
    body: bytes,
    signature: str,
    now: float | None = None,
) -> bool:
    version, _, rest = signature.partition(",")
    ts_text, _, mac = rest.partition(",")
    if version != "v1" or not ts_text.isdigit() or not mac:
        return False
    ts = int(ts_text)
    if abs((time.time() if now is None else now) - ts) > MAX_SKEW_S:
        return False
    return same_secret(_mac(key, ts, method, target, principal, body), mac)


def same_secret(expected: str, given: str) -> bool:
    """Constant-time comparison of two texts, one of them from a client. ``hmac.compare_digest``
    raises TypeError on a non-ASCII ``str`` (a header can carry any latin-1 character): compare
    UTF-8 bytes instead, so such input is a plain mismatch, never a 500."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogateescape"))


def internal(service: str) -> str:
    """The principal a service signs its own calls to another service with (the orders saga's
    price, reserve and authorize steps, an operator's stock administration). It holds a raw
    ``/``, which :func:`header_value` always percent-encodes: no token's ``sub`` can pass for
    it."""
    return INTERNAL_PREFIX + service


def signed_headers(
    key: bytes | None, method: str, target: str, principal: str, body: bytes
) -> dict[str, str]:
    """The two headers that vouch for ``principal`` on this request (none without a key: the
    check is off)."""
    if key is None:
        return {}
    return {
        PRINCIPAL_HEADER: principal,
        SIGNATURE_HEADER: sign(key, method, target, principal, body),
    }


def tag(key: bytes, principal: str) -> str:
    """The pseudonymous owner id stored with a principal's records."""
    return hmac.new(key, b"owner\n" + principal.encode(), hashlib.sha256).hexdigest()[:32]


def target_of(request: Request) -> str:
    return raw_target(request.scope)


def raw_target(scope: Mapping[str, Any]) -> str:
    """The path and query of an ASGI request as the client sent them (what is signed)."""
    raw = scope.get("raw_path") or str(scope.get("path", "")).encode()
    query = scope.get("query_string", b"")
    path = raw.decode("latin-1")
    return f"{path}?{query.decode('latin-1')}" if query else path


def vouched(key: bytes | None, scope: Mapping[str, Any], body: bytes) -> bool:
    """Whether this ASGI request carries a principal signature that verifies under ``key``
    (the check of :func:`caller`, on the raw request, for a middleware that read the body)."""
    if key is None:
        return False
    found: dict[bytes, bytes] = {}
    for name, value in scope.get("headers", ()):
        if name in (PRINCIPAL_HEADER_RAW, SIGNATURE_HEADER_RAW):
            found.setdefault(name, value)
    who = found.get(PRINCIPAL_HEADER_RAW, b"").decode("latin-1")
    signature = found.get(SIGNATURE_HEADER_RAW, b"").decode("latin-1")
    if not who or not signature:
        return False
    method = str(scope.get("method", ""))
    return verify(key, method, raw_target(scope), who, body, signature)


async def caller(request: Request) -> Caller:
    """FastAPI dependency of the routes clients reach through the gateway."""
    key: bytes | None = getattr(request.app.state, "gateway_key", None)
    if key is None:
        if getattr(request.app.state, "gateway_auth_off", False):
            return Caller(tag=None)
        raise NotFromGateway("this service has no gateway key configured")
    who = request.headers.get(PRINCIPAL_HEADER, "")
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not who or not signature:
        raise NotFromGateway("requests reach this route only through the gateway")
    body = await request.body()
    if not verify(key, request.method, target_of(request), who, body, signature):
        raise NotFromGateway("the gateway signature does not match this request")
    return Caller(tag=tag(key, who))


def install(state: object) -> None:
    """Load the key onto an app's ``state`` at start (a settings error stops the service)."""
    key = load_key()
    state.gateway_key = key  # type: ignore[attr-defined]
    state.gateway_auth_off = key is None  # type: ignore[attr-defined]


CallerDep = Annotated[Caller, Depends(caller)]
