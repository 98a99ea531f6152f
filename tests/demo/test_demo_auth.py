"""The demo's bearer tokens verify against its JWKS (what the regions' gateways are given)."""

from __future__ import annotations

import base64
import json
import time

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from checkout_demo.auth import KID, Issuer


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify(token: str, jwks: str) -> dict[str, object]:
    head, body, sig = token.split(".")
    header = json.loads(unb64(head))
    jwk = next(k for k in json.loads(jwks)["keys"] if k["kid"] == header["kid"])
    assert header["alg"] == jwk["alg"] == "ES256"
    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(unb64(jwk["x"]), "big"), int.from_bytes(unb64(jwk["y"]), "big"),
        ec.SECP256R1(),
    ).public_key()  # fmt: skip
    raw = unb64(sig)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    claims: dict[str, object] = json.loads(unb64(body))
    return claims


def test_tokens_verify_against_the_jwks() -> None:
    issuer = Issuer()
    token = issuer.token("customer-US-1")
    claims = verify(token, issuer.jwks())
    assert claims["sub"] == "customer-US-1"
    assert isinstance(claims["exp"], int)
    assert claims["exp"] > time.time() + 500
    assert issuer.token("customer-US-1") == token  # cached
    assert json.loads(issuer.jwks())["keys"][0]["kid"] == KID


def test_a_token_from_another_key_does_not_verify() -> None:
    with pytest.raises(InvalidSignature):
        verify(Issuer().token("mallory"), Issuer().jwks())
