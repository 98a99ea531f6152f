"""Schemathesis against the gateway's OpenAPI document, on the two-region fleet (every route
reaches real services, checkouts real sagas and the PSP simulator): no 5xx, every error is
problem+json. Schemathesis' pytest loader does not run with this pytest version, so each
operation's hypothesis strategy is driven directly (as in tests/services)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import gateway_harness as gh
import hypothesis
import jwt
import pytest
import schemathesis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.core.failures import Failure

pytestmark = pytest.mark.stack

EXAMPLES = hypothesis.settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),
    database=None,
)


def errors_are_problems(ctx: CheckContext, response: Any, case: Any) -> bool | None:
    if response.status_code >= 400:
        ctype = response.headers.get("content-type", [""])
        ctype = ctype[0] if isinstance(ctype, list) else ctype
        if not ctype.startswith("application/problem+json"):
            raise Failure(
                operation=case.operation.label,
                title="Error is not problem+json",
                message=f"{response.status_code} with content-type {ctype!r}",
            )
    return None


CHECKS = [not_a_server_error, errors_are_problems]


def steer(case: Any, n: int) -> None:
    """Every other generated body gets a known market and its currency, so that schemathesis
    also reaches the services' happy paths (random two-letter markets are unknown: 422)."""
    body = getattr(case, "body", None)
    if n % 2 or not isinstance(body, dict):
        return
    market = "US" if n % 4 else "DE"
    for key in ("market", "country"):
        if key in body:
            body[key] = market
    if "currency" in body:
        body["currency"] = "USD" if market == "US" else "EUR"


def forged_tokens(keys: gh.Keys) -> list[str]:
    """Tokens an attacker can make: another key under the real kid, the real kid with an
    algorithm its RSA key is not for (ES256, EdDSA, PS256, none, HS256 with the public key),
    an expired, a too long-lived, a foreign-audience and an issuer-less token, garbage."""
    now = int(time.time())
    claims = {"sub": "mallory", "iss": gh.ISSUER, "aud": gh.AUDIENCE, "exp": now + 300}
    kid = {"kid": keys.kid}
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    public_pem = keys.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    tokens = [
        jwt.encode(claims, gh.rsa_key(), algorithm="RS256", headers=kid),
        jwt.encode(claims, ec_key, algorithm="ES256", headers=kid),
        jwt.encode(claims, ed_key, algorithm="EdDSA", headers=kid),
        jwt.encode(claims, keys.private, algorithm="PS256", headers=kid),
        jwt.encode(claims, None, algorithm="none", headers=kid),
        _hs256(claims, public_pem, keys.kid),
        keys.token("mallory", ttl_s=-600),
        keys.token("mallory", ttl_s=90 * 24 * 3600),
        keys.token("mallory", aud="another-service"),
        jwt.encode({"sub": "mallory", "exp": now + 300}, keys.private, "RS256", headers=kid),
        "eyJhbGciOiJSUzI1NiJ9.e30.",
        "x" * 300,
    ]
    return [f"Bearer {t}" for t in tokens]


def _hs256(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """HS256 signed with the RSA public key's PEM (the classic algorithm confusion); PyJWT
    refuses to make it, so it is assembled by hand."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


@pytest.mark.parametrize("authenticated", ["token", "no-token", "forged"])
def test_gateway_openapi_properties(fleet: gh.Fleet, authenticated: str) -> None:
    fleet.route({}, {}, 1)
    fleet.stock("tee", 100000)
    fleet.stock("mug", 100000)
    url = fleet.gateways[gh.EU]
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, [op.label for op in operations]
    ran: dict[str, int] = {}
    statuses: dict[int, int] = {}
    headers = fleet.keys.auth("schemathesis") if authenticated == "token" else {}
    forged = forged_tokens(fleet.keys)

    def runner(operation: Any) -> Any:
        @hypothesis.given(operation.as_strategy())
        @EXAMPLES
        def check(case: Any) -> None:
            ran[operation.label] = ran.get(operation.label, 0) + 1
            if authenticated == "token":
                case.headers = {**(case.headers or {}), **headers}
            elif authenticated == "forged":
                token = forged[ran[operation.label] % len(forged)]
                case.headers = {**(case.headers or {}), "Authorization": token}
            steer(case, ran[operation.label])
            response = case.call_and_validate(base_url=url, checks=CHECKS)
            if case.path.startswith("/v1/"):
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        return check

    for operation in operations:
        runner(operation)()
    assert set(ran) == {op.label for op in operations}
    if authenticated == "token":
        # the token got through: the services behind the gateway answered (2xx / their 4xx)
        assert any(200 <= code < 300 for code in statuses), statuses
    else:
        # no forged token gets past authentication (422: a path parameter refused first)
        assert set(statuses) <= {401, 404, 422}, statuses
        assert statuses.get(401), statuses
    print(f"\ngateway ({authenticated}): {ran} statuses {statuses}")
